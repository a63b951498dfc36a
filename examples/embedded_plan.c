/* A host with the plan linked in: kiln compile --emit-c made embedded_plan.{c,h}; this opens
 * it from memory and prints the greedy continuation of the token ids given as arguments. */
#include <stdio.h>
#include <stdlib.h>

#include "embedded_plan.h"
#include "kiln/kiln.h"

int main(int argc, char** argv) {
  kiln_error err;
  kiln_plan* plan = NULL;
  kiln_context* ctx = NULL;
  if (kiln_plan_open_memory(kiln_plan_embedded_plan, kiln_plan_embedded_plan_size, &plan, &err) != KILN_OK ||
      kiln_context_create(plan, 1, &ctx, &err) != KILN_OK) {
    fprintf(stderr, "error: %s\n", err.message);
    kiln_plan_close(plan);
    return 1;
  }
  int32_t prompt[32], out[12];
  int64_t n_prompt = 0, n_out = 0;
  for (int i = 1; i < argc && n_prompt < 32; ++i) prompt[n_prompt++] = (int32_t)atoi(argv[i]);
  const kiln_status st = kiln_generate(ctx, prompt, n_prompt, 12, NULL, -1, out, &n_out, NULL, NULL, &err);
  if (st != KILN_OK) fprintf(stderr, "error: %s\n", err.message);
  for (int64_t i = 0; i < n_out; ++i) printf(i ? " %d" : "%d", out[i]);
  printf("\n");
  kiln_context_destroy(ctx);
  kiln_plan_close(plan);
  return st == KILN_OK ? 0 : 1;
}
