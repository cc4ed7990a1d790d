# libFuzzer targets (tests/fuzz/), included by tests/CMakeLists.txt. They
# are built when DISCO_FUZZ is on: a clang build with DISCO_SANITIZE (the
# top CMakeLists.txt; `make test-sanitize` configures build-sanitize so).
# Each runs as the ctest test of its own name (labels fuzz, sanitize) for
# DISCO_FUZZ_SECONDS from its seed corpus tests/fuzz/corpus/<name>/;
# `make fuzz` runs them longer. What it finds is written under
# build-sanitize/fuzz/<name>/.
#
# A new target (fuzz_dsm_engine is next): tests/fuzz/<name>.c defining
# LLVMFuzzerTestOneInput, a seed folder tests/fuzz/corpus/<name>/, and one
# disco_add_fuzzer(<name> LIBS ... INSTRUMENT ...) below (for the engine:
# LIBS disco_dsm_protocol, INSTRUMENT disco_dsm_protocol disco_proto).
if(NOT DISCO_FUZZ)
  return()
endif()
# `make test-sanitize` sets 60, `make fuzz` FUZZ_SECONDS (both reconfigure).
set(DISCO_FUZZ_SECONDS 60 CACHE STRING "How long each fuzz_* ctest test fuzzes, in seconds")
set(DISCO_FUZZ_DIR ${CMAKE_CURRENT_LIST_DIR})

# disco_add_fuzzer(name LIBS libs... [INSTRUMENT libs...] [SEEDS dirs...]
#                  [FLAGS libfuzzer flags...] [WORKING_DIRECTORY dir])
# INSTRUMENT: our libraries whose code the target explores; they get
# coverage instrumentation (-fsanitize=fuzzer-no-link) in this build, the
# others not (it would only slow the simulator's tests down).
function(disco_add_fuzzer name)
  cmake_parse_arguments(F "" "WORKING_DIRECTORY" "LIBS;INSTRUMENT;SEEDS;FLAGS" ${ARGN})
  foreach(lib ${F_INSTRUMENT})
    get_target_property(done ${lib} DISCO_FUZZ_INSTRUMENTED)
    if(NOT done)
      target_compile_options(${lib} PRIVATE -fsanitize=fuzzer-no-link)
      set_target_properties(${lib} PROPERTIES DISCO_FUZZ_INSTRUMENTED ON)
    endif()
  endforeach()
  add_executable(${name} ${DISCO_FUZZ_DIR}/${name}.c)
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  set_target_properties(${name} PROPERTIES RUNTIME_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/tests)
  if(NOT F_WORKING_DIRECTORY)
    set(F_WORKING_DIRECTORY ${CMAKE_BINARY_DIR})
  endif()
  add_test(NAME ${name}
           COMMAND ${DISCO_FUZZ_DIR}/run-fuzzer.sh $<TARGET_FILE:${name}> ${DISCO_FUZZ_SECONDS}
                   ${CMAKE_BINARY_DIR}/fuzz/${name} ${DISCO_FUZZ_DIR}/corpus/${name} ${F_SEEDS}
                   -- ${F_FLAGS}
           WORKING_DIRECTORY ${F_WORKING_DIRECTORY})
  math(EXPR limit "${DISCO_FUZZ_SECONDS} + 120")
  set_tests_properties(${name} PROPERTIES LABELS "fuzz;sanitize" TIMEOUT ${limit})
endfunction()

# The frame parser and the handshake over a loopback connection to a real
# TCP transport. The transport logs every refusal: -close_fd_mask=2 sends
# the target's stderr to /dev/null (libFuzzer's output and sanitizer
# reports stay).
disco_add_fuzzer(fuzz_frame_handshake LIBS disco_rpc
                 INSTRUMENT disco_rpc disco_proto disco_config
                 FLAGS -close_fd_mask=2 -max_len=4096)

# The config loader from a string; in the config corpus folder, so the
# relative key files of the seeds (the corpus and the examples) resolve.
disco_add_fuzzer(fuzz_config LIBS disco_config INSTRUMENT disco_config
                 SEEDS ${CMAKE_SOURCE_DIR}/tests/config-corpus
                       ${CMAKE_SOURCE_DIR}/cluster-config/examples
                 FLAGS -max_len=16384
                 WORKING_DIRECTORY ${CMAKE_SOURCE_DIR}/tests/config-corpus)
