# SPDX-License-Identifier: GPL-2.0-or-later
# Unit tests of cluster-config (included by tests/CMakeLists.txt).
#   config        loading the examples, defaults, initial page homes, API edges
#   config_scalar the scalar syntax helpers (sizes, names, addresses, quoting)
#   config_corpus every invalid file in tests/config-corpus/ fails with the
#                 exact message and position its first line expects
get_filename_component(DISCO_CONFIG_EXAMPLES ${CMAKE_CURRENT_LIST_DIR}/../../cluster-config/examples ABSOLUTE)
get_filename_component(DISCO_CONFIG_CORPUS ${CMAKE_CURRENT_LIST_DIR}/../config-corpus ABSOLUTE)

add_executable(test_config ${CMAKE_CURRENT_LIST_DIR}/test_config.c)
target_link_libraries(test_config PRIVATE disco_config PkgConfig::CMOCKA)
target_compile_definitions(test_config PRIVATE CONFIG_EXAMPLES_DIR="${DISCO_CONFIG_EXAMPLES}")
add_test(NAME config COMMAND test_config)

add_executable(test_config_scalar ${CMAKE_CURRENT_LIST_DIR}/test_config_scalar.c)
target_link_libraries(test_config_scalar PRIVATE disco_config PkgConfig::CMOCKA PkgConfig::YAML)
# a white-box test of the parser's own helpers (config_internal.h)
target_include_directories(test_config_scalar PRIVATE ${CMAKE_SOURCE_DIR}/cluster-config)
add_test(NAME config_scalar COMMAND test_config_scalar)

add_executable(test_config_corpus ${CMAKE_CURRENT_LIST_DIR}/test_config_corpus.c)
target_link_libraries(test_config_corpus PRIVATE disco_config PkgConfig::CMOCKA)
add_test(NAME config_corpus COMMAND test_config_corpus ${DISCO_CONFIG_CORPUS})

set_tests_properties(config config_scalar config_corpus PROPERTIES LABELS "unit;sanitize")
