from ev import *
import pickle,sys
def lcn(x, bs=0.6, ls=3.0):
    x=ndi.gaussian_filter(x,(0,bs,bs),mode='nearest')
    m=ndi.gaussian_filter(x,(0,ls,ls),mode='nearest'); dv=x-m
    v=ndi.gaussian_filter(dv*dv,(0,ls,ls),mode='nearest'); return dv/np.sqrt(v+1e-2)
def down(x): return x.reshape(len(x),16,2,16,2).mean((2,4))
ts=[0.95,0.925,0.9,0.875,0.85,0.825,0.8]
run('lcn 16px bs0.4 ls1.5', lambda x: lcn(down(x),0.4,1.5), ts)
run('lcn 32px bs1.0 ls2', lambda x: lcn(x,1.0,2.0), ts)
run('lcn 32px bs0.6 ls2', lambda x: lcn(x,0.6,2.0), ts)
run('lcn 32px bs0 ls3', lambda x: lcn(x,0.0,3.0), ts)
