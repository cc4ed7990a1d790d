# SPDX-License-Identifier: GPL-2.0-or-later
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
# Memory budgets (docs/protocol.md, "Budgets and eviction"): every node
# holds at most --budget pages (4 home pages each, so 3 or 1 frames left
# to cache 12 or 4 others), evictions and write-backs at random moments
# and whenever a request waits for a frame, home moves offered and
# refused. Each run fails unless it evicted clean and dirty copies and
# made requests wait for room.
foreach(cfg "51;4;16;7;2;20;30" "52;3;12;6;1;40;30" "53;5;16;5;1;10;100")
  list(GET cfg 0 seed)
  list(GET cfg 1 nodes)
  list(GET cfg 2 pages)
  list(GET cfg 3 budget)
  list(GET cfg 4 min_cache)
  list(GET cfg 5 evict)
  list(GET cfg 6 migrate)
  add_test(NAME dsm_sim_budget_seed${seed}_n${nodes}_p${pages}_b${budget}
           COMMAND dsm-sim --seed ${seed} --nodes ${nodes} --pages ${pages} --budget ${budget}
                   --min-cache ${min_cache} --evict ${evict} --migrate ${migrate} --events 1000000)
  set_tests_properties(dsm_sim_budget_seed${seed}_n${nodes}_p${pages}_b${budget} PROPERTIES
                       LABELS "sim;sanitize")
endforeach()
# ... with Disco's policy moving homes (and handing cold ones back) ...
add_test(NAME dsm_sim_budget_policy
         COMMAND dsm-sim --seed 54 --nodes 4 --pages 16 --budget 7 --min-cache 2 --evict 10
                 --migrate 0 --policy 100 --events 1000000)
# ... with order kept per (channel, page) only, and one-sided page reads ...
add_test(NAME dsm_sim_budget_per_page_fifo_one_sided
         COMMAND dsm-sim --seed 55 --nodes 4 --pages 16 --budget 6 --min-cache 1 --evict 20
                 --per-page-fifo --one-sided --events 1000000)
# ... and one CPU per node under heavy migration.
add_test(NAME dsm_sim_budget_migration_heavy
         COMMAND dsm-sim --seed 56 --nodes 3 --pages 9 --cpus 1 --budget 5 --min-cache 1 --evict 30
                 --migrate 200 --events 1000000)
set_tests_properties(dsm_sim_budget_policy dsm_sim_budget_per_page_fifo_one_sided
                     dsm_sim_budget_migration_heavy PROPERTIES LABELS "sim;sanitize")

# The mutation that must be caught: an engine whose write-back does not
# wait for the home (it drops the dirty copy when its EVICT goes out).
# Built for this test only; the page is then lost.
add_library(disco_dsm_protocol_mutant STATIC ${CMAKE_SOURCE_DIR}/dsm/protocol.c
            ${CMAKE_SOURCE_DIR}/dsm/policy.c ${CMAKE_SOURCE_DIR}/dsm/evict.c)
target_compile_definitions(disco_dsm_protocol_mutant PRIVATE DSM_MUTANT_WRITEBACK_NO_WAIT)
# the engine's own headers, without linking the real engine
target_include_directories(disco_dsm_protocol_mutant PUBLIC
  $<TARGET_PROPERTY:disco_dsm_protocol,INTERFACE_INCLUDE_DIRECTORIES>)
add_executable(dsm-sim-mutant ${CMAKE_SOURCE_DIR}/tests/sim/dsm_sim.c)
target_compile_definitions(dsm-sim-mutant PRIVATE DSM_SIM_NAME="dsm-sim-mutant")
target_link_libraries(dsm-sim-mutant PRIVATE disco_dsm_protocol_mutant)
set_target_properties(dsm-sim-mutant PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/sim)
add_test(NAME dsm_sim_writeback_without_wait_is_caught
         COMMAND dsm-sim-mutant --seed 51 --nodes 4 --pages 16 --budget 7 --min-cache 2 --evict 20
                 --events 1000000)
set_tests_properties(dsm_sim_writeback_without_wait_is_caught PROPERTIES LABELS "sim;sanitize"
                     PASS_REGULAR_EXPRESSION "dsm-sim: FAIL at step [0-9]+: page [0-9]+ lost")
