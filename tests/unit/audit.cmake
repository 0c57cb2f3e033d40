# audit/: the audit log's record format, chain, writer and verifier.
dk_unit_test(test_audit_rec SOURCES test_audit_rec.c LIBS dkaudit dkcommon)
dk_unit_test(test_audit_verify SOURCES test_audit_verify.c LIBS dkaudit dkcommon)
