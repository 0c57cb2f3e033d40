# common/dk_config: the INI configuration file.
dk_unit_test(test_config SOURCES test_config.c LIBS dkcommon)
