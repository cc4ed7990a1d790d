# The mini guest (README.md in this folder): a freestanding x86-64 kernel
# built with the host compiler, as build/tests/guest-mini/mini.bin (a flat
# multiboot image for QEMU's -kernel) and mini-break.bin (-DBREAK: every
# test has a deliberate bug and must FAIL). The project's own compile and
# link options (and the sanitizers) do not apply to it. Include from
# tests/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/guest-mini/mini.cmake OPTIONAL)
if(DISCO_SANITIZE)
  return() # a kernel cannot run under ASan; the normal build has it
endif()
set(MINI_DIR ${CMAKE_CURRENT_LIST_DIR})
set(MINI_OUT ${CMAKE_BINARY_DIR}/tests/guest-mini)
set(MINI_SOURCES boot.S main.c console.c lib.c acpi.c paging.c smp.c tests_common.c
    test_atomic.c test_spinlock.c test_litmus.c test_ipi.c test_smc.c test_ramwalk.c)
list(TRANSFORM MINI_SOURCES PREPEND ${MINI_DIR}/)
# boot.S goes through the C compiler driver too (gcc preprocesses and
# assembles .S files), so the project needs no ASM language.
set_source_files_properties(${MINI_DIR}/boot.S PROPERTIES LANGUAGE C)

function(disco_mini_kernel name)
  add_executable(guest-${name} ${MINI_SOURCES})
  set_target_properties(guest-${name} PROPERTIES
    COMPILE_OPTIONS "" LINK_OPTIONS "" # not the project's (-D_GNU_SOURCE, sanitizers)
    OUTPUT_NAME ${name}.elf RUNTIME_OUTPUT_DIRECTORY ${MINI_OUT}
    LINK_DEPENDS ${MINI_DIR}/link.ld)
  target_compile_options(guest-${name} PRIVATE
    -Wall -Wextra -Werror -Wno-unused-parameter
    -m64 -ffreestanding -fno-pie -fno-stack-protector -fno-asynchronous-unwind-tables
    -fcf-protection=none -mno-red-zone -mgeneral-regs-only ${ARGN})
  target_link_options(guest-${name} PRIVATE
    -nostdlib -static -no-pie -Wl,-T,${MINI_DIR}/link.ld -Wl,--build-id=none
    -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments)
  add_custom_command(TARGET guest-${name} POST_BUILD
    COMMAND ${CMAKE_OBJCOPY} -O binary $<TARGET_FILE:guest-${name}> ${MINI_OUT}/${name}.bin
    BYPRODUCTS ${MINI_OUT}/${name}.bin)
endfunction()
disco_mini_kernel(mini)
disco_mini_kernel(mini-break -DBREAK)

# System tests (mini_test.sh): the patched QEMU and disco-node, as for
# tests/system. KVM keeps its work small: this machine's /dev/kvm emulates
# instructions ~1000x slower than hardware (timed in docs/benchmarks.md).
set(MINI_TEST ${MINI_DIR}/mini_test.sh ${CMAKE_BINARY_DIR})
set(MINI_KVM_CMDLINE "mini.cx16=0 mini.atomic_n=1000 mini.lock_n=20 mini.litmus_n=50 mini.ipi_n=50 mini.smc_n=50 mini.walk_stride=512")
set(MINI_RDMA_CMDLINE "mini.atomic_n=2000 mini.lock_n=20 mini.litmus_n=50 mini.ipi_n=50 mini.smc_n=50 mini.walk_mib=4")
add_test(NAME mini_tcg_2_nodes COMMAND ${MINI_TEST} 2)
add_test(NAME mini_tcg_4_nodes COMMAND ${MINI_TEST} 4 --memory 128M --cmdline "mini.lock_n=100")
add_test(NAME mini_kvm_2_nodes COMMAND ${MINI_TEST} 2 --accel kvm --cmdline ${MINI_KVM_CMDLINE})
add_test(NAME mini_break_must_fail COMMAND ${MINI_TEST} 2 --break --cmdline "mini.timeout=10")
# A vCPU that KVM cannot run (code in MMIO) on n1 stops every node.
add_test(NAME mini_kvm_internal_error_stops_vm COMMAND ${MINI_TEST} 2 --accel kvm --crash-mmio-exec)
# Without CAP_SYS_PTRACE a node may only handle user-mode faults: refused under KVM.
add_test(NAME mini_kvm_refused_without_kernel_faults COMMAND ${MINI_TEST} 2 --accel kvm --no-ptrace)
set_tests_properties(mini_tcg_2_nodes mini_tcg_4_nodes mini_kvm_2_nodes mini_break_must_fail
  mini_kvm_internal_error_stops_vm mini_kvm_refused_without_kernel_faults
  PROPERTIES LABELS "system;mini" TIMEOUT 1200 RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
# Over RDMA in the Soft-RoCE VM (tests/rdma/README.md): label rdma.
add_test(NAME mini_rdma_2_nodes
  COMMAND ${MINI_DIR}/mini_rdma.sh ${CMAKE_BINARY_DIR} 2 --memory 32M --cmdline ${MINI_RDMA_CMDLINE})
add_test(NAME mini_rdma_3_nodes_one_sided
  COMMAND ${MINI_DIR}/mini_rdma.sh ${CMAKE_BINARY_DIR} 3 --memory 48M --one-sided
          --cmdline ${MINI_RDMA_CMDLINE})
set_tests_properties(mini_rdma_2_nodes mini_rdma_3_nodes_one_sided PROPERTIES
  LABELS "rdma;mini" TIMEOUT 1800 RUN_SERIAL TRUE SKIP_RETURN_CODE 77)
