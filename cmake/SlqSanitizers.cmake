# SLQ_SANITIZE=address -> ASan + UBSan; SLQ_SANITIZE=thread -> TSan. Applied to every target.
# Run-time options (UBSan halting on the first report, the TSan suppressions) are set by
# scripts/test.sh --sanitize; see docs/RELIABILITY.md.
#
# SLQ_BUILD_FUZZ=ON (clang only) instruments every target for libFuzzer coverage plus
# ASan+UBSan; fuzz/CMakeLists.txt links the fuzz targets with -fsanitize=fuzzer.
if(SLQ_SANITIZE STREQUAL "address")
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=address,undefined)
elseif(SLQ_SANITIZE STREQUAL "thread")
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=thread>)
  add_link_options(-fsanitize=thread)
  # Debian's Abseil is not TSan-instrumented: without this shim TSan cannot see absl::Mutex
  # hand-offs and reports false races on everything an absl::Mutex guards. The shim (a shared
  # library ahead of Abseil in every link) interposes Mutex/CondVar and annotates them for
  # TSan; see tsan_absl_mutex.cc.
  add_library(slq_tsan_absl_mutex SHARED ${CMAKE_CURRENT_LIST_DIR}/tsan_absl_mutex.cc)
  # Its Condition calls resolve in Abseil itself (targets that do not use Abseil link it too).
  target_link_libraries(slq_tsan_absl_mutex PRIVATE ${CMAKE_DL_LIBS} absl_synchronization)
  link_libraries(slq_tsan_absl_mutex)
elseif(NOT SLQ_SANITIZE STREQUAL "")
  message(FATAL_ERROR "SLQ_SANITIZE must be empty, 'address' or 'thread', got '${SLQ_SANITIZE}'")
endif()

if(SLQ_BUILD_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "SLQ_BUILD_FUZZ needs clang (libFuzzer): configure with "
                        "-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang (see scripts/fuzz.sh)")
  endif()
  if(NOT SLQ_SANITIZE STREQUAL "")
    message(FATAL_ERROR "SLQ_BUILD_FUZZ brings its own sanitizers; leave SLQ_SANITIZE empty")
  endif()
  # UBSan findings abort (a crash libFuzzer records) instead of printing and going on.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                      -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined)
endif()
