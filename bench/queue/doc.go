// Package queue compares jumpfleet's durable upgrade queue with the two
// queues a team would otherwise reach for: github.com/hibiken/asynq on Redis
// and a NATS JetStream work queue.
//
// The comparison lives in the Go benchmarks BenchmarkQueue,
// BenchmarkQueueAsynq and BenchmarkQueueJetStream. Each runs the same Mix
// per iteration: enqueue N jobs with P concurrent producers while dispatch
// is held, move K of them to the front (a console's jump), then dispatch
// every job under a limit of Limit in flight and complete it. Each reports
// ops/s, where one op is one job taken through that whole life (enqueued,
// dispatched, completed; one in N/K also jumped), so the three figures
// divide into a fair ratio.
//
// Every iteration also checks the semantics the figure is worth nothing
// without: no job lost or dispatched twice, never more than Limit in flight
// as seen by the workers, and every jumped job dispatched before the normal
// jobs that were waiting when it jumped (Tracker).
//
// The benchmarks start what they need: a redis-server from the machine's
// packages (.ci/deps.sh installs it; without it the asynq benchmark skips
// and says so) and an embedded nats-server with JetStream on a temporary
// directory.
package queue
