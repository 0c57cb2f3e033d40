# dkim/: header parsing, canonicalization, signature assembly.
dk_unit_test(test_dkim_msg SOURCES test_dkim_msg.c LIBS dkdkim dkcommon)
dk_unit_test(test_dkim_canon SOURCES test_dkim_canon.c LIBS dkdkim dkcommon)
dk_unit_test(test_dkim_sig SOURCES test_dkim_sig.c LIBS dkdkim dkcommon)
