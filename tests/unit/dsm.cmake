# DSM unit tests: the protocol engine alone, and the region runtime
# (userfaultfd + TCP) with two nodes inside one test process.
add_executable(test_protocol ${CMAKE_SOURCE_DIR}/tests/unit/test_protocol.c)
target_link_libraries(test_protocol PRIVATE disco_dsm_protocol PkgConfig::CMOCKA)
set_target_properties(test_protocol PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_test(NAME dsm_protocol COMMAND test_protocol)
set_tests_properties(dsm_protocol PROPERTIES LABELS "unit;sanitize")

add_executable(test_region ${CMAKE_SOURCE_DIR}/tests/unit/test_region.c)
target_link_libraries(test_region PRIVATE disco_dsm PkgConfig::CMOCKA)
set_target_properties(test_region PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_test(NAME dsm_region COMMAND test_region)
set_tests_properties(dsm_region PROPERTIES LABELS "unit;sanitize" TIMEOUT 120)

add_executable(test_policy ${CMAKE_SOURCE_DIR}/tests/unit/test_policy.c)
target_link_libraries(test_policy PRIVATE disco_dsm_protocol PkgConfig::CMOCKA)
set_target_properties(test_policy PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_test(NAME dsm_policy COMMAND test_policy)
set_tests_properties(dsm_policy PROPERTIES LABELS "unit;sanitize")

add_executable(test_evict ${CMAKE_SOURCE_DIR}/tests/unit/test_evict.c)
target_link_libraries(test_evict PRIVATE disco_dsm_protocol PkgConfig::CMOCKA)
set_target_properties(test_evict PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_test(NAME dsm_evict COMMAND test_evict)
set_tests_properties(dsm_evict PROPERTIES LABELS "unit;sanitize")

add_executable(test_protocol_budget ${CMAKE_SOURCE_DIR}/tests/unit/test_protocol_budget.c)
target_link_libraries(test_protocol_budget PRIVATE disco_dsm_protocol PkgConfig::CMOCKA)
set_target_properties(test_protocol_budget PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
add_test(NAME dsm_protocol_budget COMMAND test_protocol_budget)
set_tests_properties(dsm_protocol_budget PROPERTIES LABELS "unit;sanitize")
