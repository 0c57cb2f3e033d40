# hsm/hsm_store.c: two processes changing one real SoftHSM token.
find_file(DK_SOFTHSM_MODULE_UNIT libsofthsm2.so PATHS /usr/lib/softhsm
	/usr/lib/x86_64-linux-gnu/softhsm NO_DEFAULT_PATH REQUIRED)
dk_unit_test(test_hsm_store SOURCES test_hsm_store.c LIBS dkhsm dkcommon)
target_compile_definitions(test_hsm_store PRIVATE DK_SOFTHSM_MODULE="${DK_SOFTHSM_MODULE_UNIT}")
