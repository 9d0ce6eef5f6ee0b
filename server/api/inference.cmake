# Included by server/api/CMakeLists.txt: the InferenceService edge (owned by the inference work).
add_library(slq_inference_api inference_service.cc)
target_include_directories(slq_inference_api PUBLIC ${PROJECT_SOURCE_DIR})
target_link_libraries(slq_inference_api
  PUBLIC slq_api slq_inference slq_proto gRPC::grpc++ absl::statusor
  PRIVATE slq_metrics absl::strings absl::time slq_warnings)

if(SLQ_BUILD_TESTS)
  slq_add_test(slq_inference_api_test SOURCES inference_service_test.cc
    LIBS slq_inference_api slq_model_testutil TIMEOUT 300)
endif()
