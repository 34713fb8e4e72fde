CREATE TABLE "waiting_jobs" (
	"job_id" text NOT NULL,
	"attempt" integer NOT NULL,
	"seq" bigserial NOT NULL,
	"tenant" text NOT NULL,
	"type" text NOT NULL,
	"priority" smallint NOT NULL,
	"job_priority" text NOT NULL,
	"cost" integer,
	"payload" text,
	"idempotency_key" text,
	"fingerprint" text,
	"last_outcome" text,
	"created_at" timestamp with time zone NOT NULL,
	"queued_at" timestamp with time zone NOT NULL,
	"due_at" timestamp with time zone NOT NULL,
	"not_before" timestamp with time zone NOT NULL,
	"state" text NOT NULL,
	"reason" text,
	"updated_at" timestamp with time zone NOT NULL,
	CONSTRAINT "waiting_jobs_job_id_attempt_pk" PRIMARY KEY("job_id","attempt")
);
--> statement-breakpoint
CREATE INDEX "waiting_jobs_waiting_idx" ON "waiting_jobs" USING btree ("seq") WHERE state IN ('queued', 'dispatching');--> statement-breakpoint
CREATE INDEX "waiting_jobs_tenant_idx" ON "waiting_jobs" USING btree ("tenant","type") WHERE state IN ('queued', 'dispatching');--> statement-breakpoint
CREATE INDEX "waiting_jobs_type_idx" ON "waiting_jobs" USING btree ("type") WHERE state = 'queued';--> statement-breakpoint
CREATE UNIQUE INDEX "waiting_jobs_idempotency_idx" ON "waiting_jobs" USING btree ("tenant","idempotency_key") WHERE idempotency_key IS NOT NULL AND state IN ('queued', 'dispatching');