# The deterministic protocol simulator: >= 1,000,000 random events per run
# over 3-5 nodes and >= 8 pages, with home migrations and stale faults.
add_executable(dsm-sim ${CMAKE_SOURCE_DIR}/tests/sim/dsm_sim.c)
target_link_libraries(dsm-sim PRIVATE disco_dsm_protocol)
set_target_properties(dsm-sim PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/sim)
foreach(cfg "1;3;8" "2;4;8" "3;5;16" "4;4;12")
  list(GET cfg 0 seed)
  list(GET cfg 1 nodes)
  list(GET cfg 2 pages)
  add_test(NAME dsm_sim_seed${seed}_n${nodes}_p${pages}
           COMMAND dsm-sim --seed ${seed} --nodes ${nodes} --pages ${pages} --events 1000000)
  set_tests_properties(dsm_sim_seed${seed}_n${nodes}_p${pages} PROPERTIES LABELS "sim;sanitize")
endforeach()
# Heavy migration and a single CPU per node: different interleavings.
add_test(NAME dsm_sim_migration_heavy COMMAND dsm-sim --seed 11 --nodes 3 --pages 8 --cpus 1 --migrate 200 --events 1000000)
set_tests_properties(dsm_sim_migration_heavy PROPERTIES LABELS "sim;sanitize")
# Order kept only per (channel, page): what the runtime's min-hold deferral
# produces. The protocol's reasoning is per page, so it must still hold.
add_test(NAME dsm_sim_per_page_fifo COMMAND dsm-sim --seed 21 --nodes 4 --pages 8 --per-page-fifo --events 1000000)
set_tests_properties(dsm_sim_per_page_fifo PROPERTIES LABELS "sim;sanitize")
# Disco's policy moving homes under load (no random migrations: every move
# is the policy's); the run fails if the policy never moved a page.
add_test(NAME dsm_sim_policy COMMAND dsm-sim --seed 31 --nodes 4 --pages 8 --migrate 0 --policy 100 --events 1000000)
set_tests_properties(dsm_sim_policy PROPERTIES LABELS "sim;sanitize")
# Page bytes by one-sided RDMA READ, as dsm/one_sided.c moves them (the
# engine is the same; the run fails if the path was never taken) ...
add_test(NAME dsm_sim_one_sided COMMAND dsm-sim --seed 41 --nodes 4 --pages 8 --one-sided --events 1000000)
set_tests_properties(dsm_sim_one_sided PROPERTIES LABELS "sim;sanitize")
add_test(NAME dsm_sim_one_sided_policy_per_page_fifo
         COMMAND dsm-sim --seed 42 --nodes 5 --pages 16 --one-sided --per-page-fifo --policy 100 --events 1000000)
set_tests_properties(dsm_sim_one_sided_policy_per_page_fifo PROPERTIES LABELS "sim;sanitize")
# ... and without its version check, which must be caught: a requester
# then installs bytes it read while the home's copy was changing.
add_test(NAME dsm_sim_one_sided_unchecked_is_caught
         COMMAND dsm-sim --seed 41 --nodes 4 --pages 8 --one-sided-unchecked --events 1000000)
set_tests_properties(dsm_sim_one_sided_unchecked_is_caught PROPERTIES LABELS "sim;sanitize"
                     PASS_REGULAR_EXPRESSION "dsm-sim: FAIL at step [0-9]+: page [0-9]+: node [0-9]+ SHARED holds")
