import type { LayoutServerLoad } from './$types';

export const load = (({ locals }) => ({ admin: locals.admin })) satisfies LayoutServerLoad;
