CREATE TABLE "idempotency_keys" (
	"tenant" text NOT NULL,
	"key" text NOT NULL,
	"position" integer NOT NULL,
	"batch_size" integer,
	"job_id" text NOT NULL,
	"fingerprint" text NOT NULL,
	"admitted_at" timestamp with time zone NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	CONSTRAINT "idempotency_keys_tenant_key_position_pk" PRIMARY KEY("tenant","key","position")
);
--> statement-breakpoint
ALTER TABLE "attempts" ADD COLUMN "lease_extended_until" timestamp with time zone;--> statement-breakpoint
ALTER TABLE "jobs" ADD COLUMN "cost" integer;--> statement-breakpoint
CREATE INDEX "idempotency_keys_expires_at_idx" ON "idempotency_keys" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "attempts_unfinished_idx" ON "attempts" USING btree ("lease_expires_at") WHERE outcome IS NULL;--> statement-breakpoint
CREATE INDEX "attempts_retries_admitted_idx" ON "attempts" USING btree ("admitted_at") WHERE attempt > 1;