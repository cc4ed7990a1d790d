# SPDX-License-Identifier: GPL-2.0-or-later
# Process tests: real member processes talking over 127.0.0.1.
add_test(NAME dsm_stress_4_processes
         COMMAND disco-dsm-stress --processes 4 --threads 2 --iterations 3000)
set_tests_properties(dsm_stress_4_processes PROPERTIES LABELS "process" TIMEOUT 600)
# The same on memfd backing: every install a UFFDIO_CONTINUE of the file's page
add_test(NAME dsm_stress_4_processes_memfd
         COMMAND disco-dsm-stress --processes 4 --threads 2 --iterations 3000 --backing memfd)
set_tests_properties(dsm_stress_4_processes_memfd PROPERTIES LABELS "process" TIMEOUT 600)

# Memory budgets smaller than the region (docs/protocol.md §10): each node is
# home of 16 MiB of the interleaved 64 MiB and may cache 4 (or 16) pages
# besides, so copies are evicted and written back all the time; every
# counter and checksum must still be exact, and evictions and write-backs
# must have happened.
add_test(NAME dsm_stress_4_processes_budget
         COMMAND disco-dsm-stress --processes 4 --threads 2 --iterations 3000
                 --node-memory 16400K --min-cache 4K)
set_tests_properties(dsm_stress_4_processes_budget PROPERTIES LABELS "process" TIMEOUT 600)
add_test(NAME dsm_stress_4_processes_budget_memfd
         COMMAND disco-dsm-stress --processes 4 --threads 2 --iterations 3000
                 --node-memory 16448K --min-cache 16K --backing memfd)
set_tests_properties(dsm_stress_4_processes_budget_memfd PROPERTIES LABELS "process" TIMEOUT 600)

add_test(NAME dsm_bench_smoke
         COMMAND ${CMAKE_SOURCE_DIR}/tests/process/bench_smoke.sh $<TARGET_FILE:disco-dsm-bench>)
set_tests_properties(dsm_bench_smoke PROPERTIES LABELS "process" TIMEOUT 300)

add_test(NAME tools_reject_bad_arguments
         COMMAND ${CMAKE_SOURCE_DIR}/tests/process/cli_errors.sh
                 $<TARGET_FILE:disco-dsm-stress> $<TARGET_FILE:disco-dsm-bench>)
set_tests_properties(tools_reject_bad_arguments PROPERTIES LABELS "process" TIMEOUT 120)

# bash completion of the disco command (packaging/bash-completion/disco)
add_test(NAME disco_bash_completion
         COMMAND ${CMAKE_SOURCE_DIR}/tests/process/completion_test.sh ${CMAKE_SOURCE_DIR})
set_tests_properties(disco_bash_completion PROPERTIES LABELS "process" TIMEOUT 60)
