# dirmoe_find_library(<target> PKG <pkg-config name> HEADER <header> NAMES <library names...>)
#
# An imported target for a C library that Debian describes with pkg-config (SentencePiece, zstd).
# With pkg-config the module's flags are used as they are. Without it (a GPU host whose image has
# none, or `-DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON`) the header and the library are searched
# over CMAKE_PREFIX_PATH and the system paths.
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
  find_library(DIRMOE_${id}_LIBRARY NAMES ${ARG_NAMES})
  if(NOT DIRMOE_${id}_INCLUDE_DIR OR NOT DIRMOE_${id}_LIBRARY)
    message(FATAL_ERROR "${ARG_PKG}: ${ARG_HEADER} or its library (${ARG_NAMES}) not found without pkg-config; "
                        "install its Debian -dev package or add the prefix that holds it to CMAKE_PREFIX_PATH")
  endif()
  message(STATUS "${ARG_PKG} (no pkg-config): ${DIRMOE_${id}_LIBRARY}")
  target_include_directories(${target} SYSTEM INTERFACE ${DIRMOE_${id}_INCLUDE_DIR})
  target_link_libraries(${target} INTERFACE ${DIRMOE_${id}_LIBRARY})
endfunction()
