/*
 * test_host_cli.c — engram-run as a user meets it: results on stdout, failures on stderr with
 * file:line, usage errors naming the flag and its accepted forms, and the exit statuses
 * (0 ok, 1 a burst failed, 2 usage). Runs the engram-run of this build (beside spec/).
 */
#include "test.h"

#include <limits.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char bin[PATH_MAX + 32];
static char out[16384], err[16384];

static void slurp(const char *path, char *buf, size_t cap)
{
  FILE *f = fopen(path, "r");
  size_t n = f ? fread(buf, 1, cap - 1, f) : 0;
  buf[n] = '\0';
  if (f)
    fclose(f);
}

/* Run engram-run with the given arguments (a shell fragment); returns its exit status. */
static int run(const char *args)
{
  char cmd[PATH_MAX + 1024];
  snprintf(cmd, sizeof cmd, "%s %s >/tmp/engram-cli-%d.out 2>/tmp/engram-cli-%d.err </dev/null", bin, args,
           (int)getpid(), (int)getpid());
  int st = system(cmd);
  char path[64];
  snprintf(path, sizeof path, "/tmp/engram-cli-%d.out", (int)getpid());
  slurp(path, out, sizeof out);
  unlink(path);
  snprintf(path, sizeof path, "/tmp/engram-cli-%d.err", (int)getpid());
  slurp(path, err, sizeof err);
  unlink(path);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int have_bin(void)
{
  return access(bin, X_OK) == 0;
}

#define NEED_BIN() do { if (!have_bin()) SKIP("%s is not built (make all)", bin); } while (0)

TEST(runs_bursts_and_prints_one_json_line_each)
{
  NEED_BIN();
  CHECK_EQ(run("scripts/examples/hello.lua --bursts 3 --workers 2 --param n=10"), 0);
  CHECK_CONTAINS(out, "{\"arena_used\":40,\"burst\":1,\"n\":10,\"sum\":22.5,\"worker\":");
  CHECK_CONTAINS(out, "\"burst\":3,");
  int lines = 0;
  for (const char *p = out; *p; p++)
    lines += *p == '\n';
  CHECK_EQ(lines, 3);
  CHECK_STR(err, "");
  CHECK_EQ(run("scripts/examples/stages.lua --param size=7 --quiet"), 0);
  CHECK_STR(out, "");
  CHECK_EQ(run("scripts/examples/stages.lua --param size=7"), 0);
  CHECK(strncmp(out, "{\"mean\":0.500000", 16) == 0);   /* float32 arithmetic in the arena */
  CHECK_CONTAINS(out, ",\"n\":7}\n");
}

TEST(failed_burst_exits_1_with_file_and_line)
{
  NEED_BIN();
  CHECK_EQ(run("scripts/examples/failing.lua"), 1);
  CHECK_CONTAINS(err, "engram-run: burst 1 failed (script error): scripts/examples/failing.lua:5: asked to fail");
  CHECK_CONTAINS(err, "stack traceback:");
  CHECK_EQ(run("scripts/examples/failing.lua --param fail=no"), 0);
  CHECK_STR(out, "\"ok\"\n");
}

TEST(syntax_error_exits_1_with_file_and_line)
{
  NEED_BIN();
  char path[] = "/tmp/engram-cli-XXXXXX.lua";
  int fd = mkstemps(path, 4);
  const char text[] = "return function(burst)\n\n  return 1 +\nend\n";
  CHECK_EQ(write(fd, text, sizeof text - 1), (long long)(sizeof text - 1));
  close(fd);
  char args[128], want[160];
  snprintf(args, sizeof args, "%s", path);
  CHECK_EQ(run(args), 1);
  snprintf(want, sizeof want, "engram-run: %s:4: unexpected symbol near 'end'\n", path);
  CHECK_STR(err, want);
  unlink(path);
}

TEST(deadline_exits_1_and_names_the_deadline)
{
  NEED_BIN();
#if defined(__SANITIZE_THREAD__)
  SKIP("ThreadSanitizer delivers signals only at intercepted calls; a compiled loop makes none");
#endif
  CHECK_EQ(run("scripts/examples/runaway.lua --timeout 50"), 1);
  CHECK_CONTAINS(err, "engram-run: burst 1 failed (deadline exceeded): burst: deadline of 50 ms exceeded");
}

TEST(usage_errors_exit_2_naming_the_flag_and_forms)
{
  NEED_BIN();
  CHECK_EQ(run(""), 2);
  CHECK_CONTAINS(err, "engram-run: no SCRIPT given");
  CHECK_EQ(run("/nonexistent/x.lua"), 2);
  CHECK_CONTAINS(err, "engram-run: cannot read script '/nonexistent/x.lua' (No such file or directory)");
  CHECK_EQ(run("scripts/examples/hello.lua --arena-size 12X"), 2);
  CHECK_CONTAINS(err, "engram-run: bad --arena-size '12X' (expected bytes, or a number with KiB, MiB, GiB, K, M or G, from 64KiB to 1GiB)");
  CHECK_EQ(run("scripts/examples/hello.lua --arena-size=2GiB"), 2);
  CHECK_CONTAINS(err, "bad --arena-size '2GiB'");
  CHECK_EQ(run("scripts/examples/hello.lua --workers 0"), 2);
  CHECK_CONTAINS(err, "engram-run: bad --workers '0' (expected a whole number from 1 to 256)");
  CHECK_EQ(run("scripts/examples/hello.lua --bursts -3"), 2);
  CHECK_CONTAINS(err, "bad --bursts '-3'");
  CHECK_EQ(run("scripts/examples/hello.lua --overflow sometimes"), 2);
  CHECK_CONTAINS(err, "engram-run: bad --overflow 'sometimes' (expected error, panic or fallback)");
  CHECK_EQ(run("scripts/examples/hello.lua --param noequals"), 2);
  CHECK_CONTAINS(err, "engram-run: bad --param 'noequals' (expected KEY=VALUE");
  CHECK_EQ(run("scripts/examples/hello.lua --timeout"), 2);
  CHECK_CONTAINS(err, "engram-run: --timeout needs a value");
  CHECK_EQ(run("scripts/examples/hello.lua --stats=xml"), 2);
  CHECK_CONTAINS(err, "expected --stats, --stats=text or --stats=json");
  CHECK_EQ(run("scripts/examples/hello.lua --frobnicate"), 2);
  CHECK_CONTAINS(err, "engram-run: unknown option '--frobnicate'");
  CHECK_CONTAINS(err, "engram-run --help");
  CHECK_EQ(run("--help"), 0);
  CHECK_CONTAINS(out, "usage: engram-run SCRIPT [options]");
  CHECK_CONTAINS(out, "exit status: 0 every burst succeeded; 1 a burst failed");
}

TEST(stats_json_is_one_line_with_runtime_and_process_parts)
{
  NEED_BIN();
  CHECK_EQ(run("scripts/examples/hello.lua --bursts 20 --workers 2 --quiet --stats=json"), 0);
  CHECK(strncmp(out, "{\"seconds\": ", 12) == 0);
  CHECK_CONTAINS(out, "\"runtime\": {\"workers\": 2,");
  CHECK_CONTAINS(out, "\"completed\": 20,");
  CHECK_CONTAINS(out, "\"process\": {");
  CHECK(strchr(out, '\n') == out + strlen(out) - 1);
  CHECK_EQ(run("scripts/examples/hello.lua --bursts 4 --quiet --stats"), 0);
  CHECK_CONTAINS(out, "runtime: ");
  CHECK_CONTAINS(out, "worker 0: ");
  CHECK_CONTAINS(out, "arenas: ");
}

TEST(import_lands_a_file_whole_or_exits_1_naming_line_and_column)
{
  NEED_BIN();
  char db[64];
  snprintf(db, sizeof db, "/tmp/engram-cli-import-%d.db", (int)getpid());
  char args[512];
  snprintf(args, sizeof args, "import spec/fixtures/episodes_syntax.jsonl --db %s", db);
  CHECK_EQ(run(args), 1);
  CHECK_STR(err, "engram-run: spec/fixtures/episodes_syntax.jsonl:3:23: unexpected '\"' "
                 "(expected ',' or '}' after a value)\n");
  CHECK(access(db, F_OK) != 0);   /* nothing was created */
  snprintf(args, sizeof args, "import spec/fixtures/episodes_good.jsonl --db %s", db);
  CHECK_EQ(run(args), 0);
  char want[256];
  snprintf(want, sizeof want, "imported 3 episodes from spec/fixtures/episodes_good.jsonl into %s\n", db);
  CHECK_STR(out, want);
  CHECK_EQ(run(args), 1);         /* the same ids again: refused whole */
  CHECK_CONTAINS(err, "spec/fixtures/episodes_good.jsonl:1: store: episode id 1 is already in");
  CHECK_EQ(run("import spec/fixtures/episodes_good.jsonl"), 2);
  CHECK_STR(err, "engram-run: import needs --db PATH (the store to import into)\n"
                 "(engram-run --help lists the options)\n");
  snprintf(args, sizeof args, "import /nonexistent.jsonl --db %s", db);
  CHECK_EQ(run(args), 2);
  CHECK_CONTAINS(err, "engram-run: cannot read import file '/nonexistent.jsonl' (No such file or directory)");
  snprintf(args, sizeof args, "rm -f %s %s-wal %s-shm", db, db, db);
  CHECK_EQ(system(args), 0);
}

TEST(demo_generates_consolidates_and_reports)
{
  NEED_BIN();
  char db[64], args[512];
  snprintf(db, sizeof db, "/tmp/engram-cli-demo-%d.db", (int)getpid());
  snprintf(args, sizeof args, "demo --db %s --episodes 400 --workers 2", db);
  CHECK_EQ(run(args), 0);
  CHECK_CONTAINS(out, "generated 400 episodes (40 topics, 768-d embeddings, ages over six weeks) into");
  CHECK_CONTAINS(out, "consolidated 400 episodes;");
  CHECK_CONTAINS(out, "  unconsolidated                  400            0\n");
  CHECK_CONTAINS(out, "bursts on 2 workers");
  CHECK_STR(err, "");
  CHECK_EQ(run(args), 0);          /* its own store: replaced */
  char other[96];
  snprintf(other, sizeof other, "/tmp/engram-cli-notdemo-%d.db", (int)getpid());
  snprintf(args, sizeof args, "import spec/fixtures/episodes_good.jsonl --db %s", other);
  CHECK_EQ(run(args), 0);
  snprintf(args, sizeof args, "demo --db %s --episodes 100", other);
  CHECK_EQ(run(args), 1);          /* a store it did not make: refused, kept */
  char want[256];
  snprintf(want, sizeof want, "engram-run: demo: refusing to replace '%s': it is not a store the demo made "
           "(remove it, or choose another --db)\n", other);
  CHECK_STR(err, want);
  snprintf(args, sizeof args, "rm -f %s %s-wal %s-shm", other, other, other);
  CHECK_EQ(system(args), 0);
  CHECK_EQ(run("demo --episodes 5"), 2);
  CHECK_CONTAINS(err, "bad --episodes '5' (expected a whole number from 100 to 1000000)");
  snprintf(args, sizeof args, "rm -f %s %s-wal %s-shm", db, db, db);
  CHECK_EQ(system(args), 0);
}

TEST(a_pipeline_on_a_store_too_big_for_the_arena_says_which_flag_to_raise)
{
  NEED_BIN();
  char db[64], args[256];
  snprintf(db, sizeof db, "/tmp/engram-cli-small-%d.db", (int)getpid());
  snprintf(args, sizeof args, "import spec/fixtures/episodes_good.jsonl --db %s", db);
  CHECK_EQ(run(args), 0);
  snprintf(args, sizeof args, "scripts/consolidate.lua --db %s --arena-size 64KiB --param context=20000", db);
  CHECK_EQ(run(args), 1);
  CHECK_CONTAINS(err, "store: the arena cannot hold the batch of 100 + 20000 rows of 4 floats");
  CHECK_CONTAINS(err, "(give the workers a larger arena, e.g. --arena-size 16MiB, or lower batch or context)");
  snprintf(args, sizeof args, "scripts/consolidate.lua --db %s", db);
  CHECK_EQ(run(args), 0);
  CHECK_CONTAINS(out, "\"episodes\":3,");
  snprintf(args, sizeof args, "rm -f %s %s-wal %s-shm", db, db, db);
  CHECK_EQ(system(args), 0);
}

int main(void)
{
  /* engram-run sits in build/MODE/, this program in build/MODE/spec/; scripts are found from
   * the source tree root, where run-tests.sh runs. */
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  self[n > 0 ? n : 0] = '\0';
  char *slash = strrchr(self, '/');
  if (slash)
    *slash = '\0';
  snprintf(bin, sizeof bin, "%s/../engram-run", self);
  const char *root = getenv("ENGRAM_ROOT");
  if (root && chdir(root) != 0)
    printf("# cannot chdir to %s\n", root);
  RUN(runs_bursts_and_prints_one_json_line_each);
  RUN(failed_burst_exits_1_with_file_and_line);
  RUN(syntax_error_exits_1_with_file_and_line);
  RUN(deadline_exits_1_and_names_the_deadline);
  RUN(usage_errors_exit_2_naming_the_flag_and_forms);
  RUN(stats_json_is_one_line_with_runtime_and_process_parts);
  RUN(import_lands_a_file_whole_or_exits_1_naming_line_and_column);
  RUN(demo_generates_consolidates_and_reports);
  RUN(a_pipeline_on_a_store_too_big_for_the_arena_says_which_flag_to_raise);
  return test_done();
}
