CREATE TABLE "outcome_events" (
	"event_id" text PRIMARY KEY NOT NULL,
	"job_id" text NOT NULL,
	"attempt" integer NOT NULL,
	"outcome" text NOT NULL,
	"error" text,
	"actual_cost" integer,
	"lease_token_hash" text NOT NULL,
	"applied" boolean NOT NULL,
	"stream_seq" bigint NOT NULL,
	"reported_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "outcome_events_job_idx" ON "outcome_events" USING btree ("job_id","attempt");--> statement-breakpoint
CREATE INDEX "outcome_events_reported_at_idx" ON "outcome_events" USING btree ("reported_at");--> statement-breakpoint
CREATE INDEX "attempts_finished_at_idx" ON "attempts" USING btree ("finished_at");--> statement-breakpoint
CREATE INDEX "budget_ledger_job_idx" ON "budget_ledger" USING btree ("job_id");--> statement-breakpoint
CREATE INDEX "rejected_messages_received_at_idx" ON "rejected_messages" USING btree ("received_at");