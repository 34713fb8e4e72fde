DROP INDEX "waiting_jobs_type_idx";--> statement-breakpoint
CREATE INDEX "waiting_jobs_type_waiting_idx" ON "waiting_jobs" USING btree ("type") WHERE state IN ('queued', 'dispatching');