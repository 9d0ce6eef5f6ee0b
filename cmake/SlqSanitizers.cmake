# SLQ_SANITIZE=address -> ASan + UBSan; SLQ_SANITIZE=thread -> TSan. Applied to every target.
if(SLQ_SANITIZE STREQUAL "address")
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined>
                      $<$<COMPILE_LANGUAGE:CXX>:-fno-omit-frame-pointer>)
  add_link_options(-fsanitize=address,undefined)
elseif(SLQ_SANITIZE STREQUAL "thread")
  add_compile_options($<$<COMPILE_LANGUAGE:CXX>:-fsanitize=thread>)
  add_link_options(-fsanitize=thread)
elseif(NOT SLQ_SANITIZE STREQUAL "")
  message(FATAL_ERROR "SLQ_SANITIZE must be empty, 'address' or 'thread', got '${SLQ_SANITIZE}'")
endif()
