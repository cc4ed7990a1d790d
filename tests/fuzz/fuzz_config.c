/*
 * libFuzzer harness: the cluster config loader from a string
 * (cluster_config_load_string(): YAML parse, tree walk, validation).
 * Any input must give a config or one error line, never a crash, a
 * sanitizer report, a leak or a hang; and the error line must be one line
 * of printable ASCII whatever the input holds (values are quoted with
 * cfg_quote(), anything else unprintable is shown as \xNN), else abort().
 *
 * Relative key_file paths resolve against the current folder:
 * tests/fuzz/run-fuzzer.sh runs it in tests/config-corpus, so the seeds
 * (the corpus's files and the examples) find their keys.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster-config/cluster_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *yaml = malloc(size + 1), err[1024];
	struct cluster_config *cfg = NULL;

	if (!yaml)
		return 0;
	memcpy(yaml, data, size);
	yaml[size] = '\0';
	err[0] = '\0';
	int r = cluster_config_load_string(yaml, "fuzz.yaml", &cfg, err, sizeof(err));
	free(yaml);
	if (r == 0) {
		cluster_config_free(cfg);
		return 0;
	}
	if (cfg || !err[0]) {
		fprintf(stderr, "fuzz: a failed load must give no config and one message\n");
		abort();
	}
	for (const unsigned char *p = (const unsigned char *)err; *p; p++)
		if (*p < 0x20 || *p >= 0x7f) {
			fprintf(stderr, "fuzz: byte 0x%02x in the error line: %s\n", *p, err);
			abort();
		}
	return 0;
}
