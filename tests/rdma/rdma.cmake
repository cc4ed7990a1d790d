# SPDX-License-Identifier: GPL-2.0-or-later
# The Soft-RoCE test VM (tests/rdma/README.md): Debian's stock kernel under
# Debian's qemu-system-x86_64 (TCG) with rdma_rxe, the host's /usr and /etc
# and this repository over 9p. scripts/run-in-rdma-testvm.sh builds the VM
# with scripts/make-rdma-testvm.sh when missing or stale (the first time it
# downloads the kernel package, ~100 MB), boots it (~10 s) and runs the
# command in it; exit 77 (SKIP) if QEMU cannot run here. The build tree must
# lie inside the repository (the VM sees only the repository). Include from
# tests/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/rdma/rdma.cmake)
get_filename_component(DISCO_RDMA_REPO ${CMAKE_CURRENT_LIST_DIR}/../.. ABSOLUTE)
set(DISCO_RDMA_RUN ${DISCO_RDMA_REPO}/scripts/run-in-rdma-testvm.sh
    --build ${CMAKE_BINARY_DIR}/rdma-vm --timeout 840 --)
add_test(NAME rdma_softroce_verbs_smoke
  COMMAND ${DISCO_RDMA_RUN} ${CMAKE_CURRENT_LIST_DIR}/verbs_smoke.sh)
# The RDMA transport and the DSM over it, on rxe0 (dsm_over_rdma.sh).
foreach(step transport stress one_sided kill bench)
  add_test(NAME rdma_dsm_${step}
    COMMAND ${DISCO_RDMA_RUN} env BENCH_SAMPLES=100 BENCH_ROUNDS=100
            ${CMAKE_CURRENT_LIST_DIR}/dsm_over_rdma.sh ${step} ${CMAKE_BINARY_DIR})
endforeach()
set_tests_properties(rdma_softroce_verbs_smoke rdma_dsm_transport rdma_dsm_stress
  rdma_dsm_one_sided rdma_dsm_kill rdma_dsm_bench PROPERTIES
  LABELS "rdma" TIMEOUT 900 SKIP_RETURN_CODE 77 RUN_SERIAL TRUE)
