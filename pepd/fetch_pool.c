/*
 * Idle libcurl easy handles kept for reuse: curl_easy_reset() keeps a
 * handle's caches (DNS, session IDs) and saves the allocation of a new
 * one per fetch. At most PEPD_EASY_POOL are kept.
 */
#include <curl/curl.h>

#include "pepd.h"

void *
fetch_pool_get(struct fetcher *f)
{
	CURL *h;

	if (f->npool == 0)
		return curl_easy_init();
	h = f->pool[--f->npool];
	curl_easy_reset(h);
	return h;
}

void
fetch_pool_put(struct fetcher *f, void *easy)
{
	if (easy == NULL)
		return;
	if (f->npool < PEPD_EASY_POOL)
		f->pool[f->npool++] = easy;
	else
		curl_easy_cleanup(easy);
}

void
fetch_pool_free(struct fetcher *f)
{
	while (f->npool > 0)
		curl_easy_cleanup(f->pool[--f->npool]);
}
