# The test network (scripts/lib/netns.sh, scripts/netns-cluster.sh): the
# user-space delay line, and the tests that run nodes in network namespaces
# across it (docs/architecture.md, "Failures"). Include from
# tests/CMakeLists.txt.
add_executable(disco-delay-line ${CMAKE_CURRENT_LIST_DIR}/delay_line.c)
set_target_properties(disco-delay-line PROPERTIES
  RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/netns)

# Each test needs root and a kernel with network namespaces, veth and
# nftables netdev hooks; without them it exits 77 (SKIP) saying which is
# missing (tests/netns/common.sh).
function(disco_netns_test name script timeout)
  add_test(NAME ${name} COMMAND ${CMAKE_CURRENT_LIST_DIR}/${script} ${CMAKE_BINARY_DIR})
  set_tests_properties(${name} PROPERTIES LABELS "netns;system" TIMEOUT ${timeout}
                       SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
endfunction()
disco_netns_test(netns_dsm_stress_lossy dsm_stress_lossy_test.sh 600)
disco_netns_test(netns_2_nodes_coherence two_nodes_coherence_test.sh 900)
disco_netns_test(netns_4_nodes_faults four_nodes_faults_test.sh 1500)
disco_netns_test(netns_partition_stops_cleanly partition_stops_test.sh 1500)
