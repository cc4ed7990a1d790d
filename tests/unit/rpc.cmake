# Unit tests of the RPC layer (rpc/). Included by tests/CMakeLists.txt.
# test_rpc_transport opens real sockets on 127.0.0.1 (ports derived from the
# pid); tests/rdma/ runs the same program over Soft-RoCE (DISCO_TEST_TRANSPORT).
set(DISCO_RPC_TESTS
  test_log
  test_frame
  test_auth
  test_rpc_call
  test_rpc_transport
  test_rpc_session)
foreach(t ${DISCO_RPC_TESTS})
  add_executable(${t} ${CMAKE_CURRENT_LIST_DIR}/${t}.c)
  if(t MATCHES "^test_(rpc_transport|rpc_session|log)$")
    target_sources(${t} PRIVATE ${CMAKE_CURRENT_LIST_DIR}/raw_peer.c) # a hostile client
  endif()
  target_link_libraries(${t} PRIVATE disco_rpc PkgConfig::CMOCKA)
  string(REPLACE "test_" "" name ${t})
  string(REPLACE "rpc_" "" name ${name})
  add_test(NAME rpc_${name} COMMAND ${t})
  set_tests_properties(rpc_${name} PROPERTIES LABELS "unit;sanitize" TIMEOUT 120)
endforeach()
