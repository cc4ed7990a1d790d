/*
 * Runs every file of the invalid-config corpus (the .yaml files in
 * tests/config-corpus/) and checks that loading fails with exactly the
 * message the file's first line announces:
 *
 *   # expect: LINE:COL: field.path: message
 *
 * The loader's message must equal "<path>:" followed by that text, so the
 * position is checked along with the words. "${DIR}" in the expectation
 * stands for the corpus folder's absolute path (messages about key files
 * name the resolved path). One cmocka test per file, so a failure names it.
 *
 * A file that loads must fail the host checks instead
 * (cluster_vm_check_host(), run for each VM in order: disk images that are
 * missing or in another format than written; the images are in
 * tests/config-corpus/images/), with the same kind of message.
 * Usage: test_config_corpus CORPUS_DIR
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "cluster-config/cluster_config.h"

#define MIN_CORPUS 20

static char corpus_dir[PATH_MAX];

struct corpus_case {
	char path[PATH_MAX + 256];
	char expect[PATH_MAX + 2048]; /* "path:" + the expectation, ${DIR} replaced */
};

/* First line of @path after "# expect: ", ${DIR} expanded. */
static int read_expectation(const char *path, char *out, size_t len)
{
	char line[1024], *p, *nl;
	FILE *f = fopen(path, "rb");
	size_t o;

	if (!f)
		return -errno;
	p = fgets(line, sizeof(line), f);
	fclose(f);
	if (!p || strncmp(line, "# expect: ", 10) != 0)
		return -EINVAL;
	if ((nl = strchr(line, '\n')))
		*nl = '\0';
	o = (size_t)snprintf(out, len, "%s:", path);
	for (p = line + 10; *p && o + 1 < len;) {
		if (!strncmp(p, "${DIR}", 6)) {
			o += (size_t)snprintf(out + o, len - o, "%s", corpus_dir);
			p += 6;
		} else {
			out[o++] = *p++;
		}
	}
	out[o < len ? o : len - 1] = '\0';
	return 0;
}

static void test_corpus_file(void **state)
{
	const struct corpus_case *tc = *state;
	struct cluster_config *cfg = NULL;
	char err[4096];
	int r;

	r = cluster_config_load(tc->path, &cfg, err, sizeof(err));
	for (int v = 0; r == 0 && cfg && v < cfg->n_vms; v++) {
		r = cluster_vm_check_host(cfg, v, NULL, err, sizeof(err));
		if (r < 0) {
			cluster_config_free(cfg);
			cfg = NULL;
			r = -EINVAL; /* the message is what is checked */
		}
	}
	if (r != -EINVAL)
		print_error("%s: loaded with %d (%s), expected -EINVAL\n", tc->path, r,
			    r ? err : "valid");
	assert_int_equal(r, -EINVAL);
	assert_null(cfg);
	if (strcmp(err, tc->expect) != 0)
		print_error("expected: %s\n     got: %s\n", tc->expect, err);
	assert_string_equal(err, tc->expect);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv)
{
	struct dirent *de;
	char **names = NULL;
	size_t n = 0;
	DIR *d;

	if (argc != 2 || !realpath(argv[1], corpus_dir)) {
		fprintf(stderr, "usage: test_config_corpus CORPUS_DIR\n");
		return 2;
	}
	d = opendir(corpus_dir);
	if (!d) {
		perror(corpus_dir);
		return 2;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);

		if (l > 5 && !strcmp(de->d_name + l - 5, ".yaml")) {
			names = realloc(names, (n + 1) * sizeof(*names));
			names[n++] = strdup(de->d_name);
		}
	}
	closedir(d);
	if (n < MIN_CORPUS) {
		fprintf(stderr, "%s: only %zu corpus files, expected at least %d\n", corpus_dir, n,
			MIN_CORPUS);
		return 2;
	}
	qsort(names, n, sizeof(*names), by_name);

	struct CMUnitTest *tests = calloc(n, sizeof(*tests));
	struct corpus_case *cases = calloc(n, sizeof(*cases));
	int bad = 0;
	for (size_t i = 0; i < n; i++) {
		int w = snprintf(cases[i].path, sizeof(cases[i].path), "%s/%s", corpus_dir, names[i]);

		if (w < 0 || (size_t)w >= sizeof(cases[i].path) ||
		    read_expectation(cases[i].path, cases[i].expect, sizeof(cases[i].expect)) < 0) {
			fprintf(stderr, "%s: first line must be \"# expect: LINE:COL: ...\"\n",
				cases[i].path);
			bad = 1;
		}
		tests[i] = (struct CMUnitTest){.name = names[i],
					       .test_func = test_corpus_file,
					       .initial_state = &cases[i]};
	}
	int failed = bad ? 1 : _cmocka_run_group_tests("config_corpus", tests, n, NULL, NULL);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	free(tests);
	free(cases);
	return failed ? 1 : 0;
}
