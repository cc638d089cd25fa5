/* iron's front door: the `iron` and `iron-MODE` binaries.
 *
 * Engines call the runtime many times per container (state, start, kill, delete, …) and
 * only create, run and exec need iron's Python. A Python interpreter takes ~15 ms just to
 * start, so this launcher decides first: a pass-through command goes to the delegate
 * runtime with execv, iron's own flags removed; anything else (create/run/exec, features,
 * --version, iron's commands, anything it is unsure of) goes to the Python shim with the
 * argv untouched, and the shim decides exactly as it would have alone.
 *
 * The global-flag grammar mirrors shim/argv.py; a test runs both over generated argvs and
 * checks they hand the delegate the same argv. The delegate path comes from the shim's
 * stat-keyed cache of config.toml's `runtime` (shim/config.py, runtime_path); with no
 * valid cache entry the launcher defers to Python, which parses config.toml and writes it.
 *
 * Build: make PYTHON=/path/to/venv/python3 ENTRY=/path/to/entry.py
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef IRON_PYTHON
#error "IRON_PYTHON (the venv's python3) must be defined"
#endif
#ifndef IRON_ENTRY
#error "IRON_ENTRY (the shim's entry script) must be defined"
#endif

#define DEFAULT_CONFIG "/etc/iron/config.toml"
#define RUNTIME_CACHE "/run/iron/runtime.cache"

static const char *const value_flags[] = {"--root", "--log", "--log-format", "--criu",
                                          "--cgroup-manager", "--log-level", NULL};
static const char *const iron_flags[] = {"--iron-mode", "--iron-config", NULL};
static const char *const rootless_values[] = {"true", "false", "auto", NULL};
static const char *const version_flags[] = {"--version", "-v", "-V", NULL};
/* runc's commands that iron never rewrites; `features` is not here (iron adds to it), nor is
 * `restore` (it builds a container from a bundle, so the shim hardens it like create). */
static const char *const passthrough[] = {"checkpoint", "delete", "events", "kill", "list",
                                          "pause", "ps", "resume", "spec", "start",
                                          "state", "update", "help", "mounts", NULL};

static int listed(const char *word, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(word, *list) == 0)
			return 1;
	return 0;
}

/* `-root=x` and `--root` both name `--root`, as Go's flag package reads them. */
static void flag_name(const char *token, char *name, size_t size)
{
	size_t len = strcspn(token, "=");
	int one_dash = token[0] == '-' && token[1] != '-' && len > 2;
	snprintf(name, size, "%s%.*s", one_dash ? "-" : "", (int)len, token);
}

static _Noreturn void to_python(int argc, char **argv)
{
	char **args = calloc((size_t)argc + 4, sizeof(char *));
	if (!args) {
		perror("iron: calloc");
		exit(1);
	}
	args[0] = IRON_PYTHON;
	args[1] = "-IS";
	args[2] = IRON_ENTRY;
	memcpy(args + 3, argv, (size_t)argc * sizeof(char *));
	execv(IRON_PYTHON, args);
	fprintf(stderr, "iron: cannot run %s: %s (reinstall iron with install.sh)\n", IRON_PYTHON,
		strerror(errno));
	exit(127);
}

static int executable_file(const char *path)
{
	struct stat st;
	return access(path, X_OK) == 0 && stat(path, &st) == 0 && !S_ISDIR(st.st_mode);
}

static int crun_on_path(char *out, size_t size)
{
	const char *path = getenv("PATH");
	if (!path)
		path = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
	while (1) {
		size_t len = strcspn(path, ":");
		if (len)
			snprintf(out, size, "%.*s/crun", (int)len, path);
		else
			snprintf(out, size, "./crun");
		if (executable_file(out))
			return 1;
		if (!path[len])
			return 0;
		path += len + 1;
	}
}

/* The delegate as the shim would choose it, or 0 when only the shim can tell. */
static int delegate(const char *config, char *out, size_t size)
{
	struct stat st;
	if (stat(config, &st) != 0)
		return crun_on_path(out, size);
	char key[4352];
	snprintf(key, sizeof(key), "%llu:%lld:%lld:%s\n", (unsigned long long)st.st_ino,
		 (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec,
		 (long long)st.st_size, config);
	char cache[8192];
	int fd = open(RUNTIME_CACHE, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	ssize_t got = read(fd, cache, sizeof(cache) - 1);
	close(fd);
	if (got <= 0)
		return 0;
	cache[got] = '\0';
	size_t key_len = strlen(key);
	if (strncmp(cache, key, key_len) != 0)
		return 0;
	const char *runtime = cache + key_len;
	if (!*runtime)
		return crun_on_path(out, size);
	if (strchr(runtime, '\n') || strlen(runtime) >= size || !executable_file(runtime))
		return 0;
	strcpy(out, runtime);
	return 1;
}

int main(int argc, char **argv)
{
	char **kept = calloc((size_t)argc + 1, sizeof(char *));
	const char *config = getenv("IRON_CONFIG");
	int nkept = 0, i = 1;
	if (!kept)
		to_python(argc, argv);
	if (!config || !*config)
		config = DEFAULT_CONFIG;
	while (i < argc && argv[i][0] == '-' && strcmp(argv[i], "-") != 0) {
		char name[256];
		const char *token = argv[i];
		const char *inline_value = strchr(token, '=');
		flag_name(token, name, sizeof(name));
		int takes_value = listed(name, value_flags) || listed(name, iron_flags);
		if (listed(name, version_flags) || (takes_value && !inline_value && i + 1 >= argc))
			to_python(argc, argv);
		int consumed = takes_value && !inline_value ? 2 : 1;
		if (strcmp(name, "--rootless") == 0 && !inline_value && i + 1 < argc &&
		    listed(argv[i + 1], rootless_values))
			consumed = 2;
		const char *value = inline_value ? inline_value + 1 : argv[i + 1];
		if (strcmp(name, "--iron-config") == 0 && *value)
			config = value;
		if (!listed(name, iron_flags))
			for (int k = 0; k < consumed; k++)
				kept[nkept++] = argv[i + k];
		i += consumed;
	}
	if (i >= argc || !listed(argv[i], passthrough))
		to_python(argc, argv);
	char runtime[4096];
	if (!delegate(config, runtime, sizeof(runtime)))
		to_python(argc, argv);
	char **args = calloc((size_t)argc + 2, sizeof(char *));
	if (!args)
		to_python(argc, argv);
	args[0] = runtime;
	memcpy(args + 1, kept, (size_t)nkept * sizeof(char *));
	memcpy(args + 1 + nkept, argv + i, (size_t)(argc - i) * sizeof(char *));
	execv(runtime, args);
	to_python(argc, argv); /* the shim reports why the delegate would not start */
}
