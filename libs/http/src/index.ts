export { COMMON_PROBLEMS, PROBLEM_CONTENT_TYPE, fieldErrorsDetail, invalidRequest, problem, type FieldError } from './problem.js';
export { jsonBody, readJsonBody, type JsonBodyEnv, type JsonBodyResult } from './json-body.js';
export { problemNotFound, problemNotFoundFor, problemOnError, validationHook, type ValidationResult } from './edge.js';
export { requestHeader } from './header.js';
export { apiDocsRoutes } from './api-docs.js';
export { AuthFailureThrottle, bearerToken, clientAddress, refuseAuthentication, retryAfterSeconds } from './auth-throttle.js';
