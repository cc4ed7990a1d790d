# SPDX-License-Identifier: GPL-2.0-or-later
# Tests of node-monitor (included by tests/CMakeLists.txt).
#   qemu_cmdline     the QEMU argv of each node: serial on master vs others,
#                    tcg vs kvm, --append, comma escaping, shell quoting,
#                    a node outside the VM, missing kernel or initrd
#   disco_node_cli   disco-node's exit status and message for bad command
#                    lines and configs, and --dry-run output
get_filename_component(DISCO_NODE_EXAMPLES ${CMAKE_CURRENT_LIST_DIR}/../../cluster-config/examples ABSOLUTE)

add_executable(test_qemu_cmdline ${CMAKE_CURRENT_LIST_DIR}/test_qemu_cmdline.c)
target_link_libraries(test_qemu_cmdline PRIVATE disco_node_cmdline disco_config PkgConfig::CMOCKA)
target_compile_definitions(test_qemu_cmdline PRIVATE CONFIG_EXAMPLES_DIR="${DISCO_NODE_EXAMPLES}")
add_test(NAME qemu_cmdline COMMAND test_qemu_cmdline)
set_tests_properties(qemu_cmdline PROPERTIES LABELS "unit;sanitize")

add_test(NAME disco_node_cli
         COMMAND ${CMAKE_CURRENT_LIST_DIR}/../process/disco_node_cli.sh $<TARGET_FILE:disco-node>)
set_tests_properties(disco_node_cli PROPERTIES LABELS "process;sanitize" TIMEOUT 60)
