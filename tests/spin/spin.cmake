# SPDX-License-Identifier: GPL-2.0-or-later
# The SPIN model of the DSM coherence protocol (tests/spin/dsm.pml, see
# docs/protocol.md). run-spin.sh generates and compiles the verifier under
# the build tree and runs it. SPIN is found by the top-level CMakeLists.txt;
# scripts/setup.sh installs it, so a missing spin is an install bug: the
# tests are registered anyway and fail saying so.
set(DISCO_RUN_SPIN ${CMAKE_CURRENT_LIST_DIR}/run-spin.sh)
if(SPIN)
  set(_disco_spin ${SPIN})
else()
  set(_disco_spin "spin-not-found-by-cmake")
endif()

# Exhaustive search of the protocol model: no assertion violation, no
# invalid end state (8M states: about 20 s of compile and 70 s of search).
add_test(NAME spin_model
         COMMAND ${DISCO_RUN_SPIN} --spin ${_disco_spin} ${CMAKE_BINARY_DIR})
# The model must be able to fail: without the FLUSH round before a home
# move, SPIN has to find a counterexample (seconds after the compile).
add_test(NAME spin_model_detects_missing_flush
         COMMAND ${DISCO_RUN_SPIN} --spin ${_disco_spin} --expect-fail ${CMAKE_BINARY_DIR} -DNO_FLUSH)
# Memory budgets (-DBUDGET): eviction, write-back, requests waiting for
# room, home moves offered and refused, racing with fetches,
# invalidations and home moves; plus "no node over its budget" and "no
# page lost" in every state.
add_test(NAME spin_model_budget
         COMMAND ${DISCO_RUN_SPIN} --spin ${_disco_spin} ${CMAKE_BINARY_DIR} -DBUDGET)
# ... and it must catch a write-back that does not wait for the home (the
# dirty copy dropped when its EVICT leaves: the page is lost).
add_test(NAME spin_model_budget_detects_writeback_without_wait
         COMMAND ${DISCO_RUN_SPIN} --spin ${_disco_spin} --expect-fail ${CMAKE_BINARY_DIR}
                 -DBUDGET -DWB_NO_WAIT)
set_tests_properties(spin_model spin_model_detects_missing_flush spin_model_budget
                     spin_model_budget_detects_writeback_without_wait PROPERTIES
                     LABELS "model" TIMEOUT 900)
unset(_disco_spin)
