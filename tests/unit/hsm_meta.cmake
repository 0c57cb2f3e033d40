# hsm/hsm_meta.c: the metadata record beside each key (no token needed).
dk_unit_test(test_hsm_meta SOURCES test_hsm_meta.c LIBS dkhsm dkcommon)
