export { COMMON_PROBLEMS, PROBLEM_CONTENT_TYPE, problem, type FieldError } from './problem.js';
export { readJsonBody, type JsonBodyResult } from './json-body.js';
export { requestHeader } from './header.js';
export { apiDocsRoutes } from './api-docs.js';
