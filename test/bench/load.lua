-- The request mix of the load harness (test/bench), for wrk: every request
-- is one evaluation of the same kind of CI payload.
--
--   BENCH_TARGET=tollgate  POST /v1/evaluate with the payload: tollgate adds
--                          the clock, licence and cooldown state itself.
--   BENCH_TARGET=opa       POST /v1/data/tollgate/decision to stock OPA, with
--                          that context in the input, as a user of stock OPA
--                          would have to pass it.
--   BENCH_TARGET=minimal   POST /v1/data/minimal/decision to stock OPA on the
--                          minimal policy (test/bench/minimal): the payload,
--                          the licence's verdict and the key's last
--                          acceptance; OPA's own clock.
--   BENCH_TARGET=ceiling   the payload, to a JSON handler without policy.
--
--   BENCH_KEYS=varying     every request a new cooldown key (branch
--                          release/<run>.<thread>.<n>, across BENCH_PROJECTS
--                          projects): the history and cooldown table grow.
--   BENCH_KEYS=same        every request the same project, pipeline and
--                          branch: after the first, each is refused with
--                          cooldown (OPA is told the key was just accepted).
--
-- BENCH_AUTHORIZATION, if set, is sent as the Authorization header.
-- done() prints one line, "BENCH {json}", that the harness reads.

local target = os.getenv("BENCH_TARGET") or "tollgate"
local keys = os.getenv("BENCH_KEYS") or "varying"
local auth = os.getenv("BENCH_AUTHORIZATION") or ""
local projects = tonumber(os.getenv("BENCH_PROJECTS") or "10")

local threads = 0
function setup(thread)
	threads = threads + 1
	thread:set("thread_id", threads)
end

local n = 0
local run = 0
local path = "/v1/evaluate"

function init(args)
	math.randomseed(os.time() * 1000 + thread_id)
	run = math.random(1, 1000000000)
	wrk.method = "POST"
	wrk.headers["Content-Type"] = "application/json"
	if auth ~= "" then
		wrk.headers["Authorization"] = auth
	end
	if target == "opa" then
		path = "/v1/data/tollgate/decision"
	elseif target == "minimal" then
		path = "/v1/data/minimal/decision"
	end
end

local payload_format = '{"repository":"org/project-%05d","branch":"%s","pipeline":"deploy-prod",'
	.. '"metadata":{"initiator":"bench","run_id":"%d","environment":"production"}}'

function request()
	n = n + 1
	local project, branch = 0, "main"
	if keys == "varying" then
		project = n % projects
		branch = string.format("release/%d.%d.%d", run, thread_id, n)
	end
	local payload = string.format(payload_format, project, branch, n)
	if target ~= "opa" and target ~= "minimal" then
		return wrk.format(nil, path, nil, payload)
	end
	-- What tollgate computes itself: the clock, the licence's report, the
	-- cooldown state of the key.
	local now = string.format("%d000000000", os.time())
	if target == "minimal" then
		local last = ""
		if keys == "same" then
			last = ',"last_accepted_ns":' .. now
		end
		return wrk.format(nil, path, nil, '{"input":{"request":' .. payload .. ',"licence":"valid"' .. last .. '}}')
	end
	local cooldown = "{}"
	if keys == "same" then
		cooldown = '{"last_accepted_ns":' .. now .. '}'
	end
	local body = '{"input":{"request":' .. payload .. ',"context":{"now_ns":' .. now
		.. ',"licence":{"status":"valid","detail":"","subject":"bench","edition":"pro","expires_ns":4102444800000000000},'
		.. '"cooldown":' .. cooldown .. '}}}'
	return wrk.format(nil, path, nil, body)
end

function done(summary, latency, requests)
	local e = summary.errors
	io.write(string.format('BENCH {"requests":%d,"duration_us":%d,"p50_us":%.0f,"p90_us":%.0f,"p99_us":%.0f,'
		.. '"max_us":%.0f,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d}\n',
		summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
		latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
