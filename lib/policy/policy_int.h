/*
 * policy_int - what the files of lib/policy share and nobody else uses.
 */
#ifndef MAILGW_POLICY_INT_H
#define MAILGW_POLICY_INT_H

#include "policy/policy.h"
#include "template/template.h"

/* Template variables of a verdict; the strings live in storage (freed
 * with policy_vars_free).  objs: only the objects that are not clean. */
struct policy_vars {
    struct template_vars v;
    struct template_object *objs;
    struct buf strs[8];
};

void policy_vars_fill(const struct conf *c, const struct policy_verdict *v,
                      const struct policy_object *objs, struct mime_msg *msg,
                      const struct policy_facts *f, struct policy_vars *pv);
void policy_vars_free(struct policy_vars *pv);

/* A header of the message's top part, decoded (RFC 2047), malloc'd; ""
 * when absent. */
char *policy_msg_header(struct mime_msg *msg, const char *name);

#endif
