/*
 * policy - statuses, group resolution, recipient split and the per-group
 * decision (policy.h; reference §1.13, §2.1, §2.2).
 *
 * Interface: policy_status_name/parse(), policy_action_name(),
 * policy_save_name(), policy_notify_name(), policy_group_for(),
 * policy_group_name(), policy_split(), policy_sets_free(),
 * policy_decide(), policy_verdict_free(), policy_actions_text(),
 * policy_xheader(), policy_notify_from(), policy_admin_address(),
 * policy_template().
 *
 * Diagnostics: none; the config was validated by conf_load (status
 * lists, actions, masks, templates).  The built-in templates are compiled
 * once per process and never fail (t/unit/policy.t checks them).
 */
#include "policy/policy.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "addr/addr.h"
#include "conf/conf.h"
#include "template/template.h"
#include "util/log.h"
#include "util/mem.h"

static const char *const policy_status_names[POLICY_NSTATUS] = {
    "clean", "disinfected", "filtered", "corrupted", "error", "protected", "suspicious",
    "infected",
};

const char *policy_status_name(enum policy_status st)
{
    return (unsigned)st < POLICY_NSTATUS ? policy_status_names[st] : "error";
}

int policy_status_parse(const char *name)
{
    for (int i = 0; i < POLICY_NSTATUS; i++) {
        if (name && strcasecmp(name, policy_status_names[i]) == 0)
            return i;
    }
    return -1;
}

const char *policy_action_name(enum policy_action a)
{
    return a == POLICY_REMOVE ? "remove" : a == POLICY_PLACEHOLDER ? "placeholder" : "pass";
}

const char *policy_save_name(enum policy_save s)
{
    return s == POLICY_SAVE_QUARANTINE ? "quarantine" : s == POLICY_SAVE_BACKUP ? "backup" : "none";
}

const char *policy_notify_name(enum policy_notify k)
{
    return k == POLICY_NOTIFY_ADMIN ? "admin" : k == POLICY_NOTIFY_SENDER ? "sender" : "recipient";
}

/* ---- groups ---- */

static bool policy_masks_match(const struct conf *c, int group, const char *param,
                               const char *addr)
{
    const char *const *items;
    size_t n = conf_group_list(c, group, param, &items);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i], "*") == 0 || addr_mask_match(items[i], addr))
            return true;
    }
    return false;
}

int policy_group_for(const struct conf *c, const char *sender, const char *rcpt)
{
    for (size_t g = 0; g < conf_group_count(c); g++) {
        bool has_s = conf_group_is_set(c, (int)g, "Senders");
        bool has_r = conf_group_is_set(c, (int)g, "Recipients");
        if (!has_s && !has_r)
            continue;
        if (has_s && !policy_masks_match(c, (int)g, "Senders", sender ? sender : ""))
            continue;
        if (has_r && !policy_masks_match(c, (int)g, "Recipients", rcpt ? rcpt : ""))
            continue;
        return (int)g;
    }
    return -1;
}

const char *policy_group_name(const struct conf *c, int group)
{
    const char *n = group >= 0 ? conf_group_name(c, (size_t)group) : NULL;
    return n ? n : "policy";
}

size_t policy_split(const struct conf *c, const char *sender, const char *const *rcpts,
                    size_t n, struct policy_set **sets)
{
    struct policy_set *s = NULL;
    size_t ns = 0;

    for (size_t i = 0; i < n; i++) {
        int g = policy_group_for(c, sender, rcpts[i]);
        size_t k = 0;
        while (k < ns && s[k].group != g)
            k++;
        if (k == ns) {
            s = xreallocarray(s, ns + 1, sizeof *s);
            s[ns++] = (struct policy_set){ g, xcalloc(n, sizeof(char *)), 0 };
        }
        s[k].rcpts[s[k].nrcpts++] = rcpts[i];
    }
    *sets = s;
    return ns;
}

void policy_sets_free(struct policy_set *sets, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(sets[i].rcpts);
    free(sets);
}

/* ---- decision ---- */

/* Does a status list (BlockMessage, Notify*, SaveInQB) name st? */
static bool policy_list_has(const struct conf *c, int group, const char *param,
                            enum policy_status st)
{
    const char *const *items;
    size_t n = conf_group_list(c, group, param, &items);
    if (st == POLICY_CLEAN)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(items[i], "all") == 0)
            return true;
        int s = policy_status_parse(items[i]);
        if (s == (int)st || (s == POLICY_ERROR && st == POLICY_CORRUPTED))
            return true;
    }
    return false;
}

static enum policy_action policy_action_for(const struct conf *c, int group,
                                            enum policy_status st)
{
    static const char *const param[POLICY_NSTATUS] = {
        [POLICY_DISINFECTED] = "ActionDisinfected", [POLICY_FILTERED] = "ActionFiltered",
        [POLICY_CORRUPTED] = "ActionError", [POLICY_ERROR] = "ActionError",
        [POLICY_PROTECTED] = "ActionProtected", [POLICY_SUSPICIOUS] = "ActionSuspicious",
        [POLICY_INFECTED] = "ActionInfected",
    };
    if (st == POLICY_CLEAN || (unsigned)st >= POLICY_NSTATUS)
        return POLICY_PASS;
    /* "pass|remove|placeholder|cure": cure cannot be done, it removes */
    switch (conf_group_int(c, group, param[st])) {
    case 0: return POLICY_PASS;
    case 2: return POLICY_PLACEHOLDER;
    default: return POLICY_REMOVE;
    }
}

static void policy_add_name(struct buf *names, const char *virus)
{
    size_t vl = strlen(virus);
    if (vl == 0)
        return;
    for (const char *p = names->data; p && *p;) {
        const char *e = strstr(p, ", ");
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == vl && memcmp(p, virus, vl) == 0)
            return;
        p = e ? e + 2 : p + l;
    }
    if (names->len)
        buf_append_str(names, ", ");
    buf_append_str(names, virus);
}

static void policy_decide_flags(const struct conf *c, int group, struct policy_verdict *v,
                                enum policy_status st)
{
    static const char *const notify[3] = { "NotifyAdmin", "NotifySender", "NotifyRecipient" };
    v->block = v->block || policy_list_has(c, group, "BlockMessage", st);
    for (int k = 0; k < 3; k++)
        v->notify[k] = v->notify[k] || policy_list_has(c, group, notify[k], st);
    if (policy_list_has(c, group, "SaveInQB", st))
        v->save = POLICY_SAVE_BACKUP;
}

void policy_decide(const struct conf *c, int group, bool checked,
                   const struct policy_object *objs, size_t n, struct policy_verdict *v)
{
    memset(v, 0, sizeof *v);
    v->group = group;
    v->checked = checked && conf_group_bool(c, group, "Check");
    v->nobjs = n;
    v->actions = xcalloc(n ? n : 1, sizeof *v->actions);
    for (size_t i = 0; v->checked && i < n; i++) {
        enum policy_status st = objs[i].status;
        if (st > v->status)
            v->status = st;
        policy_add_name(&v->names, objs[i].virus ? objs[i].virus : "");
        v->actions[i] = policy_action_for(c, group, st);
        v->cut = v->cut || v->actions[i] != POLICY_PASS;
        policy_decide_flags(c, group, v, st);
    }
    if (v->save != POLICY_SAVE_NONE)
        v->save = v->block ? POLICY_SAVE_QUARANTINE : POLICY_SAVE_BACKUP;
    v->rewrite = !v->block && (v->cut || conf_group_bool(c, group, "AddXHeader") ||
                               conf_group_bool(c, group, "AddDisclaimer"));
}

void policy_verdict_free(struct policy_verdict *v)
{
    buf_free(&v->names);
    free(v->actions);
    v->actions = NULL;
}

void policy_actions_text(const struct policy_verdict *v, struct buf *out)
{
    bool removed = false, replaced = false;
    for (size_t i = 0; i < v->nobjs; i++) {
        removed = removed || v->actions[i] == POLICY_REMOVE;
        replaced = replaced || v->actions[i] == POLICY_PLACEHOLDER;
    }
    if (v->block)
        buf_append_str(out, "blocked");
    else if (removed && replaced)
        buf_append_str(out, "delivered with objects removed or replaced");
    else if (removed)
        buf_append_str(out, "delivered with objects removed");
    else if (replaced)
        buf_append_str(out, "delivered with objects replaced");
    else
        buf_append_str(out, "delivered");
    if (v->save == POLICY_SAVE_QUARANTINE)
        buf_append_str(out, ", quarantined");
    else if (v->save == POLICY_SAVE_BACKUP)
        buf_append_str(out, ", backed up");
}

static void policy_ymd(struct buf *out, time_t t)
{
    struct tm tm;
    char d[16];
    if (t <= 0 || gmtime_r(&t, &tm) == NULL || strftime(d, sizeof d, "%Y%m%d", &tm) == 0)
        buf_append_str(out, "00000000");
    else
        buf_append_str(out, d);
}

void policy_xheader(const struct policy_verdict *v, const struct policy_facts *f,
                    struct buf *out)
{
    buf_append_str(out, "X-Anti-Virus: " POLICY_PRODUCT ", bases: ");
    policy_ymd(out, f->bases_time);
    buf_printf(out, " #%u, check: ", f->bases_records);
    policy_ymd(out, f->now ? f->now : time(NULL));
    buf_printf(out, " %s", v->checked ? policy_status_name(v->status) : "not_checked");
}

const char *policy_notify_from(const struct conf *c, int group)
{
    const char *a = conf_group_str(c, group, "NotifyFromAddress");
    return *a ? a : conf_str(c, "mailgw.network", "Postmaster");
}

const char *policy_admin_address(const struct conf *c, int group)
{
    const char *a = conf_group_str(c, group, "AdminNotifyAddress");
    return *a ? a : conf_str(c, "mailgw.network", "Postmaster");
}

/* ---- templates ---- */

static const char *const policy_template_params[] = {
    "NotifyAdminTemplate", "NotifySenderTemplate", "NotifyRecipientTemplate",
    "PlaceholderTemplate", "DisclaimerTemplate", NULL,
};

const struct template *policy_template(const struct conf *c, int group, const char *param)
{
    static struct template *builtin[5];
    const struct template *t = conf_group_template(c, group, param);
    if (t != NULL)
        return t;
    for (size_t i = 0; policy_template_params[i]; i++) {
        if (strcmp(param, policy_template_params[i]) != 0)
            continue;
        if (builtin[i] == NULL) {
            struct buf err = BUF_INIT;
            const char *text = policy_builtin_text(param);
            builtin[i] = template_compile(param, text, strlen(text), &err);
            if (builtin[i] == NULL)
                log_fatal("built-in template %s: %s", param, err.data ? err.data : "?");
            buf_free(&err);
        }
        return builtin[i];
    }
    log_fatal("policy: %s is not a template parameter", param);
}
