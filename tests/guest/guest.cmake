# The guest test programs (tests/guest/*.c), built for the host as well.
# The guest image itself is made by scripts/make-guest.sh (static builds in an
# initramfs); building them here too means the normal build compiles them with
# the project's warnings (-Werror), and ctest runs each once on the host with
# small arguments (label "guest"), so a broken check shows up without booting
# a guest. Include from tests/CMakeLists.txt:
#   include(${CMAKE_CURRENT_SOURCE_DIR}/guest/guest.cmake)
file(GLOB DISCO_GUEST_SOURCES CONFIGURE_DEPENDS ${CMAKE_CURRENT_LIST_DIR}/*.c)
foreach(src ${DISCO_GUEST_SOURCES})
  get_filename_component(prog ${src} NAME_WE)
  add_executable(guest-${prog} ${src})
  target_link_libraries(guest-${prog} PRIVATE Threads::Threads)
  set_target_properties(guest-${prog} PROPERTIES
    OUTPUT_NAME disco-${prog}
    RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests/guest)
endforeach()

set(DISCO_GUEST_HOST_ARGS_coherence -n 2000 -l 2000 -t 50 -r 5000 -p 200)
set(DISCO_GUEST_HOST_ARGS_memtest -m 8)
set(DISCO_GUEST_HOST_ARGS_smc -r 500)
set(DISCO_GUEST_HOST_ARGS_spinlock -d 1)
set(DISCO_GUEST_HOST_ARGS_bench -b 512 -s 256)
set(DISCO_GUEST_HOST_ARGS_numa all -q)
set(DISCO_GUEST_HOST_ARGS_xzdata 1 /dev/null)
set(DISCO_GUEST_HOST_ARGS_pattern 1 4 /dev/null)
# Built but never run on the host: reset reboots the machine it runs on
# (its test is the system test system_reset_from_non_master); iolat reads
# an I/O port, which needs ioperm (its figures come from bench-boot.sh).
set(DISCO_GUEST_NOT_ON_HOST reset iolat)
foreach(src ${DISCO_GUEST_SOURCES})
  get_filename_component(prog ${src} NAME_WE)
  if(prog IN_LIST DISCO_GUEST_NOT_ON_HOST)
    continue()
  endif()
  add_test(NAME guest_${prog}_on_host COMMAND guest-${prog} ${DISCO_GUEST_HOST_ARGS_${prog}})
  set_tests_properties(guest_${prog}_on_host PROPERTIES
    LABELS guest TIMEOUT 120)
endforeach()
