/*
 * accessq - test driver for smtpd's access checks (t/integration/access_unit.t).
 *
 * Usage: accessq -c CONFIG CLIENT_IP STEP...
 *   STEP: connect | helo NAME | mail SENDER | rcpt ADDR | reset
 * Runs the steps in order on one event loop, the next step started from
 * the previous step's callback (as smtpd does), and prints per step:
 *   "STEP ALLOW" or "STEP DENY|TEMPFAIL RULE: REPLY"
 * and after connect "name NAME".  Exit 0 when all steps ran.
 * smtpd/smtpd_access.c is compiled into this program (it lives in the
 * smtpd program folder, not in libmailgw).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "../../smtpd/smtpd_access.c"

struct run {
    struct access_session *s;
    char **steps;
    int nsteps, next;
    bool done;
};

static void run_next(struct run *r);

static void step_done(const struct access_decision *d, void *arg)
{
    struct run *r = arg;
    const char *step = r->steps[r->next];
    static const char *names[] = { "ALLOW", "DENY", "TEMPFAIL" };

    if (d->result == ACCESS_ALLOW)
        printf("%s ALLOW\n", step);
    else
        printf("%s %s %s: %s\n", step, names[d->result], d->rule, d->reply);
    if (strcmp(step, "connect") == 0)
        printf("name %s\n", access_client_name(r->s));
    fflush(stdout);
    r->next += strcmp(step, "connect") == 0 || strcmp(step, "reset") == 0 ? 1 : 2;
    run_next(r);
}

static void run_next(struct run *r)
{
    const char *step, *arg;

    while (r->next < r->nsteps && strcmp(r->steps[r->next], "reset") == 0) {
        access_session_reset(r->s);
        printf("reset\n");
        r->next++;
    }
    if (r->next >= r->nsteps) {
        r->done = true;
        return;
    }
    step = r->steps[r->next];
    arg = r->next + 1 < r->nsteps ? r->steps[r->next + 1] : "";
    if (strcmp(step, "connect") == 0)
        access_connect(r->s, step_done, r);
    else if (strcmp(step, "helo") == 0)
        access_helo(r->s, arg, step_done, r);
    else if (strcmp(step, "mail") == 0)
        access_mail(r->s, arg, step_done, r);
    else if (strcmp(step, "rcpt") == 0)
        access_rcpt(r->s, arg, step_done, r);
    else
        log_fatal("accessq: unknown step %s", step);
}

int main(int argc, char **argv)
{
    struct buf diag = BUF_INIT;
    struct conf *conf;
    struct access_ctx *ctx;
    struct event_base *base;
    struct run r = { 0 };

    log_open("accessq", LOG_DEST_STDERR, NULL);
    if (argc < 4 || strcmp(argv[1], "-c") != 0) {
        fprintf(stderr, "usage: accessq -c CONFIG CLIENT_IP STEP...\n");
        return 2;
    }
    conf = conf_load(argv[2], &diag);
    if (!conf)
        log_fatal("accessq: %s", diag.data ? diag.data : "config error");
    base = event_base_new();
    if (!base || dns_init(base, conf) < 0)
        log_fatal("accessq: resolver set-up failed");
    buf_reset(&diag);
    ctx = access_load(conf, &diag);
    if (!ctx) {
        printf("load error: %s", diag.data ? diag.data : "?\n");
        return 1;
    }
    r.s = access_session_new(ctx, argv[3]);
    r.steps = argv + 4;
    r.nsteps = argc - 4;
    run_next(&r);
    while (!r.done)
        if (event_base_loop(base, EVLOOP_ONCE) != 0)
            break;
    access_session_free(r.s);
    access_free(ctx);
    dns_shutdown();
    event_base_free(base);
    conf_free(conf);
    buf_free(&diag);
    return r.done ? 0 : 1;
}
