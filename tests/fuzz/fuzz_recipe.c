/*
 * libFuzzer target for recipe_parse. More than "no crash":
 *  - a recipe that parses holds only what the schema allows (absolute
 *    image paths, host paths under the recipe's directory, sizes that
 *    are multiples of 512, known architectures, consoles console_check
 *    takes, service names rc-update takes...), merges under a command
 *    line with its operations first, and frees cleanly;
 *  - a recipe that fails says so in one line that starts with the
 *    recipe's name and then a JSON path (": .") or a position (":L:C: ");
 *  - parsing the same bytes twice gives the same answer.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../bake/edit.h"
#include "../../bake/openrc.h"
#include "../../bake/recipe.h"

#define NAME	"fuzz.json"
#define DIR	"base"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
	if (!cond)
		abort();
}

static int
host_ok(const char *p)
{
	return p != NULL && (p[0] == '/' || strncmp(p, DIR "/", 5) == 0) &&
	    strcmp(p, DIR "/") != 0;
}

static void
check_op(const struct content_op *op, const char *where)
{
	check((unsigned)op->kind < CONTENT_NKINDS && op->own == NULL);
	check(op->path != NULL && op->path[0] == '/');
	check(strncmp(where, ".files[", 7) == 0 ||
	    strncmp(where, ".services[", 10) == 0);
	check(!op->has_mode || op->mode <= 07777);
	check(!op->has_owner || (op->uid < UINT32_MAX && op->gid < UINT32_MAX));
	check(op->text == NULL || op->textlen == strlen(op->text));
	switch (op->kind) {
	case CONTENT_UPLOAD: case CONTENT_COPY_IN: case CONTENT_TAR_IN:
		check(host_ok(op->host));
		break;
	case CONTENT_WRITE: case CONTENT_APPEND_LINE:
		check(op->text != NULL);
		break;
	case CONTENT_LINK:
		check(op->textlen > 0 && op->textlen <= FS_SYMLINK_MAX);
		break;
	case CONTENT_SERVICE:
		check(host_ok(op->host));
		check(op->conf == NULL || host_ok(op->conf));
		/* FALLTHROUGH */
	case CONTENT_ENABLE: case CONTENT_DISABLE:
		check(op->name != NULL && openrc_name_ok(op->name));
		check(op->runlevel == NULL || openrc_name_ok(op->runlevel));
		break;
	default:
		check(op->host == NULL);
		break;
	}
}

static void
check_recipe(const struct recipe *r)
{
	const struct bake_opts *o = &r->o;
	struct bake_opts cli;
	struct content_op *ops = NULL, flag;
	size_t i;

	check(o->ops == r->ops && o->nops == r->nops);
	check(o->input == NULL || (host_ok(o->input) &&
	    r->source_where != NULL));
	check(o->output == NULL || host_ok(o->output));
	check(!o->size_set || (o->size > 0 && o->size % 512 == 0));
	check(!o->epoch_set || (o->epoch >= 0 && o->epoch <= INT32_MAX));
	check(o->root_part >= 0 && o->root_part <= LAYOUT_MAXPARTS);
	check(o->arch == NULL || pexi_arch_known(o->arch));
	check(o->nconsoles <= BAKE_MAXCONSOLES);
	for (i = 0; i < o->nconsoles; i++)
		check(console_check(o->consoles[i], NULL) == 0);
	for (i = 0; i < r->nops; i++)
		check_op(&r->ops[i], r->where[i]);
	memset(&cli, 0, sizeof(cli));
	memset(&flag, 0, sizeof(flag));
	flag.kind = CONTENT_TOUCH;
	flag.path = "/flag";
	cli.ops = &flag;
	cli.nops = 1;
	check(recipe_merge(r, &cli, &ops, NULL) == 0);
	check(cli.nops == r->nops + 1 && cli.ops == ops &&
	    ops[r->nops].path == flag.path);
	check(cli.nconsoles == o->nconsoles && cli.input == o->input);
	free(ops);
}

static void
check_error(const struct pep_err *e, int rc)
{
	const char *p = e->msg + strlen(NAME);
	size_t i;

	check(rc == -PEP_EUSAGE || rc == -ENOMEM);
	check(strncmp(e->msg, NAME, strlen(NAME)) == 0);
	for (i = 0; e->msg[i] != '\0'; i++)
		check((unsigned char)e->msg[i] >= 0x20 && e->msg[i] != 0x7f);
	if (strncmp(p, ": .", 3) == 0)
		return;
	check(*p++ == ':' && *p >= '1' && *p <= '9');
	p += strspn(p, "0123456789");
	check(*p++ == ':' && *p >= '1' && *p <= '9');
	p += strspn(p, "0123456789");
	check(strncmp(p, ": ", 2) == 0 && p[2] != '\0');
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pep_err e = { 0, "" }, e2 = { 0, "" };
	struct recipe *r = NULL, *r2 = NULL;
	int rc, rc2;

	rc = recipe_parse((const char *)data, size, NAME, DIR, &r, &e);
	rc2 = recipe_parse((const char *)data, size, NAME, DIR, &r2, &e2);
	check(rc == rc2);
	if (rc == 0) {
		check(r != NULL && r2 != NULL && r->nops == r2->nops);
		check_recipe(r);
	} else {
		check(r == NULL && r2 == NULL && strcmp(e.msg, e2.msg) == 0);
		check_error(&e, rc);
	}
	recipe_free(r);
	recipe_free(r2);
	return 0;
}
