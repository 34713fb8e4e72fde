CREATE TABLE "retry_due" (
	"job_id" text NOT NULL,
	"attempt" integer NOT NULL,
	"tenant" text NOT NULL,
	"due_at" timestamp with time zone NOT NULL,
	CONSTRAINT "retry_due_job_id_attempt_pk" PRIMARY KEY("job_id","attempt")
);
