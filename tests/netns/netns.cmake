# The test network (scripts/lib/netns.sh, scripts/netns-cluster.sh): the
# user-space delay line, and the tests that run nodes in network namespaces
# across it (docs/architecture.md, "Failures"). Include from
# tests/CMakeLists.txt.
add_executable(disco-delay-line ${CMAKE_CURRENT_LIST_DIR}/delay_line.c)
set_target_properties(disco-delay-line PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/netns)
