# Warnings every slq target compiles with: -Wall -Wextra clean is a requirement.
add_library(slq_warnings INTERFACE)
target_compile_options(slq_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-missing-field-initializers>)
