import { redirect } from '@sveltejs/kit';
import type { PageServerLoad } from './$types';

/** A tenant opens on its results. */
export const load = (({ params }) => {
  redirect(303, `/tenants/${params.slug}/results`);
}) satisfies PageServerLoad;
