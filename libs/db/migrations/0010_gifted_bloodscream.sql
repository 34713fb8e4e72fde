CREATE TABLE "credit_ledger" (
	"entry_id" text PRIMARY KEY NOT NULL,
	"tenant" text NOT NULL,
	"kind" text NOT NULL,
	"amount" bigint NOT NULL,
	"job_id" text,
	"attempt" integer,
	"lease_id" text,
	"at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE INDEX "credit_ledger_tenant_kind_idx" ON "credit_ledger" USING btree ("tenant","kind");--> statement-breakpoint
CREATE INDEX "credit_ledger_lease_idx" ON "credit_ledger" USING btree ("lease_id");