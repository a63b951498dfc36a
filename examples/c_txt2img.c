/* A minimal C host for text-to-image plans: prompt and seed in, a PPM image out.
 *   c_txt2img PLAN "PROMPT" SEED OUT.ppm
 * (kiln txt2img writes PNG; this example stays dependency-free with binary PPM.) */
#include <stdio.h>
#include <stdlib.h>

#include "kiln/kiln.h"

/* Progress on stderr; returning 0 would stop the image. */
static int on_step(void* user, int64_t step, int64_t steps) {
  (void)user;
  fprintf(stderr, "\rstep %lld/%lld", (long long)(step + 1), (long long)steps);
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s PLAN PROMPT SEED OUT.ppm\n", argv[0]);
    return 2;
  }
  kiln_error err;
  kiln_plan* plan = NULL;
  kiln_diffusion* d = NULL;
  if (kiln_plan_open(argv[1], &plan, &err) != KILN_OK || kiln_diffusion_create(plan, NULL, &d, &err) != KILN_OK) {
    fprintf(stderr, "error: %s\n", err.message);
    kiln_plan_close(plan);
    return 1;
  }
  kiln_diffusion_info info;
  kiln_diffusion_get_info(d, &info, &err);
  unsigned char* rgb = malloc((size_t)(info.width * info.height * 3));
  int rc = 1;
  if (rgb && kiln_txt2img(d, argv[2], "", strtoull(argv[3], NULL, 10), NULL, rgb, on_step, NULL, &err) == KILN_OK) {
    FILE* f = fopen(argv[4], "wb");
    if (f) {
      fprintf(f, "P6\n%lld %lld\n255\n", (long long)info.width, (long long)info.height);
      rc = fwrite(rgb, 3, (size_t)(info.width * info.height), f) == (size_t)(info.width * info.height) ? 0 : 1;
      rc |= fclose(f) != 0;
    }
    if (rc == 0)
      printf("\nwrote %s %lldx%lld on %s\n", argv[4], (long long)info.width, (long long)info.height,
             kiln_diffusion_backend(d));
    else fprintf(stderr, "error: cannot write %s\n", argv[4]);
  } else {
    fprintf(stderr, "error: %s\n", rgb ? err.message : "out of memory");
  }
  free(rgb);
  kiln_diffusion_destroy(d);
  kiln_plan_close(plan);
  return rc;
}
