// kernels/quant_pair.h, the element steps the CUDA quantized GEMM (kernels/cuda/gemm_quant.h)
// runs inside its kernel, evaluated here on the host from the same source: for Q8_0, Q4_0, Q4_1,
// Q4_K, Q5_K and Q6_K blocks of random bytes, with ordinary and extreme f16 scales (+-65504, the
// smallest subnormal and normal, +-0), every pair of weights equals quant.h's scalar reference
// (the load-time dequantization) bit for bit. The comparison is seen to bite: another block's
// reference differs.
#include <gtest/gtest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/quant.h"
#include "kernels/quant_pair.h"

namespace bx {
namespace {

template <int F>
quant::QuantPair pair_at(const uint8_t* block, int e) {
  return quant::dequant_pair<F>(block, e & ~15, e & 15);
}

quant::QuantPair pair_of(int format, const uint8_t* block, int e) {
  switch (format) {
    case quant::kQ8_0:
      return pair_at<quant::kQ8_0>(block, e);
    case quant::kQ4_0:
      return pair_at<quant::kQ4_0>(block, e);
    case quant::kQ4_1:
      return pair_at<quant::kQ4_1>(block, e);
    case quant::kQ4_K:
      return pair_at<quant::kQ4_K>(block, e);
    case quant::kQ5_K:
      return pair_at<quant::kQ5_K>(block, e);
    default:
      return pair_at<quant::kQ6_K>(block, e);
  }
}

// Offsets of a block's f16 fields (d, and dmin or m).
std::vector<int> f16_fields(int format) {
  switch (format) {
    case quant::kQ8_0:
    case quant::kQ4_0:
      return {0};
    case quant::kQ6_K:
      return {208};
    default:
      return {0, 2};
  }
}

TEST(QuantPair, EveryPairEqualsTheScalarReference) {
  const int formats[] = {quant::kQ8_0, quant::kQ4_0, quant::kQ4_1,
                         quant::kQ4_K, quant::kQ5_K, quant::kQ6_K};
  const uint16_t extremes[] = {0x7BFF, 0xFBFF, 0x0001, 0x8001, 0x0400, 0x0000, 0x8000, 0x3C00};
  std::mt19937 rng(17);
  for (int format : formats) {
    const quant::BlockFormat& f = quant::kBlockFormats[format];
    std::vector<uint8_t> block(static_cast<size_t>(f.block_bytes));
    std::vector<float> reference(static_cast<size_t>(f.block_elements));
    int64_t differing = 0, nonzero = 0;
    for (int trial = 0; trial < 4000; ++trial) {
      for (uint8_t& b : block) b = static_cast<uint8_t>(rng());
      for (int field : f16_fields(format)) {
        uint16_t h;
        if (trial % 2 == 1) {
          h = extremes[rng() % 8];
        } else {  // any finite f16 (NaN scales give unspecified payloads: quant.h)
          h = static_cast<uint16_t>(rng());
          if (((h >> 10) & 31) == 31) h &= 0x83FF;
        }
        std::memcpy(&block[static_cast<size_t>(field)], &h, 2);
      }
      quant::dequantize_row(f.dtype, block.data(), f.block_elements, reference.data());
      for (int e = 0; e < f.block_elements; e += 2) {
        const quant::QuantPair p = pair_of(format, block.data(), e);
        differing += std::bit_cast<uint32_t>(p.first) != std::bit_cast<uint32_t>(reference[e]);
        differing += std::bit_cast<uint32_t>(p.second) != std::bit_cast<uint32_t>(reference[e + 1]);
        nonzero += p.first != 0.0f;
      }
    }
    EXPECT_EQ(differing, 0) << f.name;
    EXPECT_GT(nonzero, 0) << f.name;
  }
}

TEST(QuantPair, AnotherBlocksReferenceDiffers) {
  const quant::BlockFormat& f = quant::kBlockFormats[quant::kQ4_K];
  std::vector<uint8_t> a(static_cast<size_t>(f.block_bytes)), b(a.size());
  std::mt19937 rng(3);
  for (uint8_t& x : a) x = static_cast<uint8_t>(rng());
  std::memset(a.data() + 4, 0x21, 12);  // every 6-bit scale and min nonzero
  b = a;
  b[100] ^= 0x11;             // both nibbles of one qs byte: one weight in each of two sub-blocks
  const uint16_t d = 0x2C00;  // 2^-4
  std::memcpy(a.data(), &d, 2);
  std::memcpy(b.data(), &d, 2);
  std::vector<float> reference(static_cast<size_t>(f.block_elements));
  quant::dequantize_row(f.dtype, b.data(), f.block_elements, reference.data());
  int differing = 0;
  for (int e = 0; e < f.block_elements; e += 2) {
    const quant::QuantPair p = pair_at<quant::kQ4_K>(a.data(), e);
    differing += std::bit_cast<uint32_t>(p.first) != std::bit_cast<uint32_t>(reference[e]);
    differing += std::bit_cast<uint32_t>(p.second) != std::bit_cast<uint32_t>(reference[e + 1]);
  }
  EXPECT_EQ(differing, 2);  // the two weights of the flipped byte
}

}  // namespace
}  // namespace bx
