# SPDX-License-Identifier: GPL-2.0-or-later
# DSM unit tests: the protocol engine, the policy and the eviction clock
# alone (pure code), and the region runtime (userfaultfd + TCP) with two
# nodes inside one test process.
foreach(t protocol protocol_budget policy evict)
  add_executable(test_${t} ${CMAKE_SOURCE_DIR}/tests/unit/test_${t}.c)
  target_link_libraries(test_${t} PRIVATE disco_dsm_protocol PkgConfig::CMOCKA)
  set_target_properties(test_${t} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  add_test(NAME dsm_${t} COMMAND test_${t})
  set_tests_properties(dsm_${t} PROPERTIES LABELS "unit;sanitize")
endforeach()

add_executable(test_region ${CMAKE_SOURCE_DIR}/tests/unit/test_region.c)
target_link_libraries(test_region PRIVATE disco_dsm PkgConfig::CMOCKA)
set_target_properties(test_region PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_test(NAME dsm_region COMMAND test_region)
set_tests_properties(dsm_region PROPERTIES LABELS "unit;sanitize" TIMEOUT 120)
