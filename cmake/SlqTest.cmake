# slq_add_test(NAME SOURCES a_test.cc ... LIBS slq_x ... [LABELS fast|slow|gpu] [TIMEOUT s])
#
# One gtest binary per call, registered with CTest under its LABELS. The default CI run
# executes label 'fast'; 'slow' suites run with `scripts/test.sh --all`. Tests find the
# shared models through SLQ_SHARED_DIR (../shared from the repo root by default).
set(SLQ_SHARED_DIR "${CMAKE_SOURCE_DIR}/../shared" CACHE PATH "Folder with models/ and data/")
function(slq_add_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  if(NOT T_LABELS)
    set(T_LABELS fast)
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gmock GTest::gtest_main slq_warnings)
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    ENVIRONMENT "SLQ_SHARED_DIR=${SLQ_SHARED_DIR};SLQ_SOURCE_DIR=${CMAKE_SOURCE_DIR};SLQ_BUILD_DIR=${CMAKE_BINARY_DIR}")
endfunction()
