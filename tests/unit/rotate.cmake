# rotate/: the DKIM key record parser and comparison, selector names, and the
# rotation fields of the key metadata record (no token, no DNS needed).
dk_unit_test(test_rot_record SOURCES test_rot_record.c LIBS dkrotate dkhsm dkcommon)
