# dirmoe_find_library(<target> PKG <pkg-config name> HEADER <header> NAMES <libraries...>)
#
# An imported target for a C library that Debian describes with pkg-config (SentencePiece, zstd).
# With pkg-config the module's flags are used as they are. Without it (a GPU host whose image has
# none, or `-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON`) the header and the library are searched
# over CMAKE_PREFIX_PATH and the system paths; every library in NAMES is required and linked, as
# the module's Libs line would (SentencePiece's is -lsentencepiece -lsentencepiece_train).
# NOTE: scripts/gpu_check.py turns pkg-config off: the .pc files of an unpacked Debian prefix
# (.deps/root/usr) still name /usr as their prefix, so pkg-config would point at the wrong tree.
function(dirmoe_find_library target)
  cmake_parse_arguments(ARG "" "PKG;HEADER" "NAMES" ${ARGN})
  string(MAKE_C_IDENTIFIER "${ARG_PKG}" id)
  add_library(${target} INTERFACE IMPORTED GLOBAL)
  if(PkgConfig_FOUND)
    pkg_check_modules(DIRMOE_PC_${id} REQUIRED IMPORTED_TARGET GLOBAL ${ARG_PKG})
    target_link_libraries(${target} INTERFACE PkgConfig::DIRMOE_PC_${id})
    return()
  endif()
  find_path(DIRMOE_${id}_INCLUDE_DIR ${ARG_HEADER})
  set(libraries "")
  set(missing "")
  foreach(name IN LISTS ARG_NAMES)
    find_library(DIRMOE_${id}_${name}_LIBRARY NAMES ${name})
    if(DIRMOE_${id}_${name}_LIBRARY)
      list(APPEND libraries ${DIRMOE_${id}_${name}_LIBRARY})
    else()
      list(APPEND missing lib${name})
    endif()
  endforeach()
  if(NOT DIRMOE_${id}_INCLUDE_DIR)
    list(APPEND missing ${ARG_HEADER})
  endif()
  if(missing)
    message(FATAL_ERROR "${ARG_PKG}: ${missing} not found without pkg-config; install its Debian -dev "
                        "package or add the prefix that holds it to CMAKE_PREFIX_PATH")
  endif()
  message(STATUS "${ARG_PKG} (no pkg-config): ${libraries}")
  target_include_directories(${target} SYSTEM INTERFACE ${DIRMOE_${id}_INCLUDE_DIR})
  target_link_libraries(${target} INTERFACE ${libraries})
endfunction()
