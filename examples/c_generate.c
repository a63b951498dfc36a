/* A minimal C host: load a plan, generate from token ids, print the new ids.
 *   c_generate PLAN [id ...] */
#include <stdio.h>
#include <stdlib.h>

#include "kiln/kiln.h"

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: %s PLAN ID [ID ...]\n", argv[0]);
    return 2;
  }
  kiln_error err;
  kiln_plan* plan = NULL;
  kiln_context* ctx = NULL;
  if (kiln_plan_open(argv[1], &plan, &err) != KILN_OK || kiln_context_create(plan, 0, &ctx, &err) != KILN_OK) {
    fprintf(stderr, "error: %s\n", err.message);
    kiln_plan_close(plan);
    return 1;
  }
  int32_t prompt[64];
  int64_t n_prompt = 0;
  for (int i = 2; i < argc && n_prompt < 64; ++i) prompt[n_prompt++] = (int32_t)atoi(argv[i]);
  int32_t out[16];
  int64_t n_out = 0;
  kiln_status st = kiln_generate(ctx, prompt, n_prompt, 16, NULL, -1, out, &n_out, NULL, NULL, &err);
  if (st != KILN_OK) fprintf(stderr, "error: %s\n", err.message);
  for (int64_t i = 0; i < n_out; ++i) printf(i ? " %d" : "%d", out[i]);
  printf("\n");
  kiln_context_destroy(ctx);
  kiln_plan_close(plan);
  return st == KILN_OK ? 0 : 1;
}
