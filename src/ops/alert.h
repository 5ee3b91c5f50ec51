/* Alerts: one per incident (a job failing, an objective breached or
 * predicted to be, a CBT fallback, verify damage, a replica failing), sent
 * when it starts and again when it resolves, to a hook command (the JSON
 * document on its stdin) and/or a webhook (POSTed with libcurl). Open
 * incidents are kept in the daemon's state file, so a restart neither
 * repeats nor forgets them. */
#ifndef PL_OPS_ALERT_H
#define PL_OPS_ALERT_H

#include <stdint.h>

#include "config.h"
#include "job.h"

struct json_object;

struct incident {
  char kind[32]; /* "job-failure", "rpo-breach", ... */
  char job[96];
  char disk[72];
  int64_t since;
  char message[512];
};

struct alerts {
  VEC(struct incident) open;
};

/* Open and resolve incidents for the jobs' state at now, sending an alert
 * for each change. Returns the number of alerts sent or attempted. */
int alerts_evaluate(struct alerts *a, const struct ops_config *c, const struct job_vec *jobs,
                    int64_t now);

/* The open incidents to and from the daemon's state document. */
void alerts_save(const struct alerts *a, struct json_object *state);
void alerts_load(struct alerts *a, struct json_object *state);
void alerts_free(struct alerts *a);

#endif
