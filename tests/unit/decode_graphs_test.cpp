// DecodeGraphs (model/decode_graphs.h): buckets, which batches are bucket steps, and the
// direct / record / replay sequence, against a GraphCapture that logs what it is asked.
#include "model/decode_graphs.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

namespace bx {
namespace {

// Records the calls; replay succeeds for keys recorded successfully (unless invalidated).
class LoggingCapture final : public GraphCapture {
 public:
  std::vector<std::string> log;
  std::vector<uint64_t> recorded;
  bool fail_recordings = false;

  bool replay(uint64_t key) override {
    const bool have = std::find(recorded.begin(), recorded.end(), key) != recorded.end();
    log.push_back((have ? "replay " : "miss ") + std::to_string(key));
    return have;
  }
  void begin_recording(uint64_t key) override { log.push_back("begin " + std::to_string(key)); }
  bool end_recording(uint64_t key, bool launch) override {
    log.push_back("end " + std::to_string(key) + (launch ? " launch" : ""));
    if (fail_recordings) return false;
    recorded.push_back(key);
    return true;
  }
};

TEST(DecodeGraphs, BucketsAreTheSmallestListedSizeAtLeastTheRows) {
  EXPECT_EQ(DecodeGraphs::bucket(1), 1);
  EXPECT_EQ(DecodeGraphs::bucket(3), 4);
  EXPECT_EQ(DecodeGraphs::bucket(17), 24);
  EXPECT_EQ(DecodeGraphs::bucket(64), 64);
  EXPECT_EQ(DecodeGraphs::bucket(65), 96);
  EXPECT_EQ(DecodeGraphs::bucket(250), 256);
}

TEST(DecodeGraphs, OnlyDecodeStepsOfABucketsSizeAreBucketSteps) {
  const std::vector<int32_t> tokens = {1, 2, 3, 4}, positions = {5, 6, 7, 8};
  const std::vector<int32_t> table = {0};
  const std::vector<const int32_t*> tables(4, table.data());
  const std::vector<int32_t> in_order = {0, 1, 2, 3}, swapped = {1, 0, 2, 3}, last = {3};
  EXPECT_TRUE(DecodeGraphs::is_bucket_step(ForwardBatch{tokens, positions, tables, in_order}));
  EXPECT_FALSE(DecodeGraphs::is_bucket_step(ForwardBatch{tokens, positions, tables, swapped}));
  EXPECT_FALSE(DecodeGraphs::is_bucket_step(ForwardBatch{tokens, positions, tables, last}));
  const std::vector<int32_t> three = {1, 2, 3}, rows3 = {0, 1, 2};  // 3 is no bucket
  const std::vector<const int32_t*> tables3(3, table.data());
  EXPECT_FALSE(DecodeGraphs::is_bucket_step(ForwardBatch{three, three, tables3, rows3}));
}

TEST(DecodeGraphs, FirstRunsDirectlySecondRecordsThenReplays) {
  LoggingCapture capture;
  DecodeGraphs graphs(&capture);
  int issued = 0;
  const auto issue = [&] { ++issued; };
  graphs.run(8, issue);  // first sight: direct
  EXPECT_EQ(issued, 1);
  EXPECT_EQ(graphs.replayed_steps(), 0);
  graphs.run(8, issue);  // second: recorded (the ops issued into the recording) and launched
  EXPECT_EQ(issued, 2);
  EXPECT_EQ(graphs.replayed_steps(), 1);
  graphs.run(8, issue);  // then replayed: nothing issued
  EXPECT_EQ(issued, 2);
  EXPECT_EQ(graphs.replayed_steps(), 2);
  const std::vector<std::string> expected = {"miss 8", "miss 8", "begin 8", "end 8 launch",
                                             "replay 8"};
  EXPECT_EQ(capture.log, expected);
}

TEST(DecodeGraphs, AFailedRecordingRunsTheOpsDirectly) {
  LoggingCapture capture;
  capture.fail_recordings = true;
  DecodeGraphs graphs(&capture);
  int issued = 0;
  for (int i = 0; i < 3; ++i) graphs.run(4, [&] { ++issued; });
  // Direct, then each later step records (issuing into the failed recording) and runs again.
  EXPECT_EQ(issued, 1 + 2 * 2);
  EXPECT_EQ(graphs.replayed_steps(), 0);
}

TEST(DecodeGraphs, AnErrorWhileRecordingEndsTheRecordingAndPropagates) {
  LoggingCapture capture;
  DecodeGraphs graphs(&capture);
  graphs.run(2, [] {});
  EXPECT_THROW(graphs.run(2, [] { throw std::runtime_error("op failed"); }), std::runtime_error);
  ASSERT_FALSE(capture.log.empty());
  EXPECT_EQ(capture.log.back(), "end 2");  // ended without launching
}

TEST(DecodeGraphs, DisabledOrWithoutCaptureIsInactive) {
  LoggingCapture capture;
  DecodeGraphs graphs(&capture);
  EXPECT_TRUE(graphs.active());
  graphs.set_enabled(false);
  EXPECT_FALSE(graphs.active());
  EXPECT_FALSE(DecodeGraphs(nullptr).active());
}

}  // namespace
}  // namespace bx
