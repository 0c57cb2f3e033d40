# client/dkc_client.c: decoding the daemon's answers (against a fake daemon socket).
dk_unit_test(test_dkc_client SOURCES test_dkc_client.c LIBS dkimkeep_client dkproto dkcommon)
