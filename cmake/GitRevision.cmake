# Writes ${CMAKE_BINARY_DIR}/generated/dirmoe/core/git_revision.inc on every build so that binaries
# report the revision they were built from (`git describe --always --dirty`), not the one CMake
# last configured at. The file is only rewritten when the revision changes, so nothing recompiles
# needlessly.
set(DIRMOE_GENERATED_DIR ${CMAKE_BINARY_DIR}/generated)
file(MAKE_DIRECTORY ${DIRMOE_GENERATED_DIR}/dirmoe/core)
add_custom_target(dirmoe_git_revision
  COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${CMAKE_SOURCE_DIR}
          -DOUT=${DIRMOE_GENERATED_DIR}/dirmoe/core/git_revision.inc
          -P ${CMAKE_SOURCE_DIR}/cmake/WriteGitRevision.cmake
  BYPRODUCTS ${DIRMOE_GENERATED_DIR}/dirmoe/core/git_revision.inc
  COMMENT "Recording git revision")
